vcl 4.1;

import std;

# Varnish in front of imgedge: caches `/i` answers as imgedge's Cache-Control says, and drops
# them by cache tag when imgedge's purge webhook (PURGE_WEBHOOK_URL=http://<varnish>/purge)
# names the tags in its Surrogate-Key header. Plain bans: no vmod needed (Debian's varnish).

backend imgedge {
    .host = "127.0.0.1";
    .port = "8080";
}

# Who may purge: imgedge's replicas. Widen this to their network.
acl purgers {
    "127.0.0.1";
    "::1";
}

sub vcl_recv {
    if (req.url == "/purge") {
        if (req.method != "POST") {
            return (synth(405, "POST only"));
        }
        if (client.ip !~ purgers) {
            return (synth(403, "not a purger"));
        }
        # Tags are ids and preset names: letters, digits, '_' and '-', separated by spaces.
        if (req.http.Surrogate-Key !~ "^[A-Za-z0-9_ -]+$") {
            return (synth(400, "Surrogate-Key missing or malformed"));
        }
        # Every cached object carrying one of the tags; checked at lookup, so the next request
        # for any of them is a miss at once (and the ban lurker frees them in the background).
        # (No spaces or quotes in the ban's regex: the ban parser splits its arguments on spaces
        # and would keep quotes as part of the regex.)
        if (std.ban("obj.http.Surrogate-Key ~ (^|[[:space:]])(" + regsuball(req.http.Surrogate-Key, " +", "|") + ")([[:space:]]|$)")) {
            return (synth(200, "banned"));
        }
        return (synth(500, std.ban_error()));
    }
    # Owner API calls and JWT-authorised images are private; signed /i URLs are shared.
    if (req.url !~ "^/i/" || req.http.Authorization) {
        return (pass);
    }
    unset req.http.Cookie;
    return (hash);
}

sub vcl_deliver {
    if (obj.hits > 0) {
        set resp.http.X-Varnish-Cache = "HIT";
    } else {
        set resp.http.X-Varnish-Cache = "MISS";
    }
}
