//! The `imgedge` command line, run as a user runs it, against the databases a server uses.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::fixtures::{decode, halves_jpeg};
use crate::harness::{assert_error, spawn, Backend, Env, JWT_SECRET};

crate::for_backends!([Sqlite, Postgres] the_command_line_signs_and_manages_users_and_presets);

/// Runs `imgedge ARGS` with `env`'s database and folder and `stdin`; (exit code, stdout, stderr).
fn imgedge(env: &Env, args: &[&str], stdin: &str) -> (i32, String, String) {
    imgedge_with(env, args, stdin, &[])
}

/// [`imgedge`] with more environment variables.
fn imgedge_with(env: &Env, args: &[&str], stdin: &str, vars: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imgedge"));
    cmd.args(args).current_dir(env.dir.path()).env("DATA_DIR", env.dir.path()).env_remove("DATABASE_URL");
    cmd.env_remove("IMGEDGE_SIGNING_KEY").env_remove("IMGEDGE_PASSWORD").envs(vars.iter().copied());
    if let imgedge::config::DatabaseBackend::Postgres(url) = &env.database {
        cmd.env("DATABASE_URL", url).env("JWT_SECRET", JWT_SECRET);
    }
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap().trim_end().to_owned();
    (out.status.code().unwrap_or(-1), text(out.stdout), text(out.stderr))
}

async fn the_command_line_signs_and_manages_users_and_presets(backend: Backend) {
    let app = spawn(backend).await;
    let env = &app.env;

    // Users: created with the password from stdin, listed, refused with one line and exit 2.
    let (code, out, err) = imgedge(env, &["user", "create", "carol", "--plan", "pro"], "password123\n");
    let (code_env, _, err_env) =
        imgedge_with(env, &["user", "create", "erin"], "", &[("IMGEDGE_PASSWORD", "password456")]);
    assert_eq!(code_env, 0, "{err_env}");
    assert_eq!(code, 0, "{err}");
    assert!(out.ends_with("\tcarol"), "{out}");
    for (args, stdin, says) in [
        (&["user", "create", "carol"][..], "password123\n", "taken"),
        (&["user", "create", "x"][..], "password123\n", "username"),
        (&["user", "create", "dave"][..], "short\n", "password"),
        (&["user", "rename", "carol"][..], "", "user takes"),
        (&["sign", "--key", "zz", "/i/x"][..], "", "64 hex"),
        (&["url", "nope", "w_1"][..], "", "not an image id"),
        (&["presets", "list", "nobody"][..], "", "no user"),
    ] {
        let (code, _, err) = imgedge(env, args, stdin);
        assert_eq!(code, 2, "{args:?}");
        assert!(err.contains(says) && !err.trim().is_empty(), "{args:?}: {err}");
    }
    let (_, list, _) = imgedge(env, &["user", "list"], "");
    assert!(list.lines().any(|l| l.contains("\tcarol\tpro\t")), "{list}");

    // The user logs in over HTTP and uploads; the tools sign URLs the server accepts (an expiry
    // past the test server's clock, which stands at noon).
    let login = json!({"username": "carol", "password": "password123"});
    let session: Value = app.post_json("/v1/auth/login", None, &login).await.json().await.unwrap();
    let token = session["token"].as_str().unwrap();
    let key: Value = app.get_auth("/v1/me/signing-key", token).await.json().await.unwrap();
    let upload =
        app.client.post(app.url("/v1/images")).bearer_auth(token).body(halves_jpeg(400, 200)).send().await.unwrap();
    let id = upload.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let path = format!("/i/{id}/w_100");
    let (code, signed, err) =
        imgedge(env, &["sign", "--key", key["key"].as_str().unwrap(), &path, "--expires-in", "90000"], "");
    assert_eq!(code, 0, "{err}");
    assert!(signed.starts_with(&format!("{path}?exp=")), "{signed}");
    let width = |bytes: &[u8]| image::GenericImageView::width(&decode(bytes));
    assert_eq!(width(&app.get(&signed).await.bytes().await.unwrap()), 100);
    // The key need not be on the command line, where `ps` shows it: the environment or a file
    // (here standard input) sign the same.
    let hex_key = key["key"].as_str().unwrap();
    let (_, from_env, err) = imgedge_with(env, &["sign", &path], "", &[("IMGEDGE_SIGNING_KEY", hex_key)]);
    let (_, from_stdin, _) = imgedge(env, &["sign", "--key-file", "-", &path], &format!("{hex_key}\n"));
    let (_, given, _) = imgedge(env, &["sign", "--key", hex_key, &path], "");
    assert_eq!((from_env.as_str(), from_stdin.as_str()), (given.as_str(), given.as_str()), "{err}");
    assert_eq!(imgedge(env, &["sign", &path], "").0, 2, "no key anywhere");
    assert_eq!(imgedge(env, &["sign", "--key", hex_key, &format!("/i/{id}/w_x")], "").0, 2, "ops that do not parse");
    let (code, url, err) = imgedge(env, &["url", &id, "fmt_png,w_50"], "");
    assert_eq!(code, 0, "{err}");
    assert!(url.starts_with(&format!("/i/{id}/w_50,fmt_png?sig=")), "canonical: {url}");
    let res = app.get(&url).await;
    assert_eq!(res.headers()["content-type"], "image/png");
    assert_eq!(width(&res.bytes().await.unwrap()), 50);
    assert_eq!(imgedge(env, &["url", &id, "w_x"], "").0, 2);

    // Presets: listed, and `url` keeps one by name.
    let preset = json!({"ops": "w_200,fmt_webp", "public": true});
    app.client.put(app.url("/v1/presets/thumb")).bearer_auth(token).json(&preset).send().await.unwrap();
    let (_, presets, _) = imgedge(env, &["presets", "list", "carol"], "");
    assert_eq!(presets, "thumb\tw_200,fmt_webp\tpublic");
    let (_, url, _) = imgedge(env, &["url", &id, "p_thumb"], "");
    assert!(url.starts_with(&format!("/i/{id}/p_thumb?sig=")), "{url}");
    assert_eq!(width(&app.get(&url).await.bytes().await.unwrap()), 200);
    // Tokens beside the preset are kept, as the API keeps them.
    let (_, url, _) = imgedge(env, &["url", &id, "dpr_1.5,p_thumb"], "");
    assert!(url.starts_with(&format!("/i/{id}/p_thumb,dpr_1.5?sig=")), "{url}");
    assert_eq!(width(&app.get(&url).await.bytes().await.unwrap()), 300);
    assert_eq!(imgedge(env, &["url", &id, "p_nope"], "").0, 2);

    // Purging: the variants leave the store, the original stays, and the next request makes one.
    assert!(!app.stored_keys(&format!("derived/{id}/")).await.is_empty());
    let (code, out, err) = imgedge(env, &["purge", &id], "");
    assert_eq!((code, out.as_str()), (0, format!("purged the variants of {id}").as_str()), "{err}");
    assert!(app.stored_keys(&format!("derived/{id}/")).await.is_empty());
    assert_eq!(app.stored_keys("originals/").await.len(), 1);
    assert_eq!(imgedge(env, &["purge", "nope"], "").0, 2);

    // Plans and deletion: the user, their images' rows and objects go.
    assert_eq!(imgedge(env, &["user", "set-plan", "carol", "free"], "").0, 0);
    let me: Value = app.get_auth("/v1/me", token).await.json().await.unwrap();
    assert_eq!(me["plan"], "free");
    let (code, out, err) = imgedge(env, &["user", "delete", "carol"], "");
    assert_eq!((code, out.as_str()), (0, "deleted carol and 1 images"), "{err}");
    assert!(app.stored_keys("originals/").await.is_empty());
    assert_error(app.post_json("/v1/auth/login", None, &login).await, 401, "unauthorized").await;
    let (code, help, _) = imgedge(env, &["--help"], "");
    assert!(code == 0 && help.contains("imgedge sign --key HEX PATH"), "{help}");
}
