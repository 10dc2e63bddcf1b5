"""The walk-through with the Python client openapi-python-client generated from docs/openapi.json.

    python walk.py BASE_URL IMAGE.png

run.sh generates the package `imgedge_client` beside this file (in a temporary directory) and
runs mypy --strict over both. Only the generated code talks to the server: register, log in,
upload (multipart and raw bytes), sign a URL, fetch the variant through the generated `/i`
operation with the URL's `sig` and `exp` as its parameters, see a wrong signature refused with
the one error model, delete (204), and see the image gone.
"""

import sys
import time
from io import BytesIO
from urllib.parse import parse_qs, urlsplit

from imgedge_client import AuthenticatedClient, Client
from imgedge_client.api.auth import login, register
from imgedge_client.api.delivery import deliver_variant
from imgedge_client.api.images import delete_image, get_image, sign_url, upload_image
from imgedge_client.models import (
    Credentials,
    ErrorCode,
    ErrorResponse,
    Image,
    ImageFormat,
    LoginCredentials,
    Session,
    SignedUrl,
    UploadImageFilesBody,
    UrlRequest,
)
from imgedge_client.types import File


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"walk.py: {what}")


def main() -> None:
    base, image_path = sys.argv[1], sys.argv[2]
    png = open(image_path, "rb").read()
    username = f"py_{time.time_ns()}"
    credentials = {"username": username, "password": "generated-python-client"}

    anonymous = Client(base_url=base, raise_on_unexpected_status=True)
    registered = register.sync_detailed(client=anonymous, body=Credentials(**credentials))
    check(registered.status_code == 201 and isinstance(registered.parsed, Session), f"register: {registered}")
    session = login.sync_detailed(client=anonymous, body=LoginCredentials(**credentials))
    check(session.status_code == 200 and isinstance(session.parsed, Session), f"login: {session}")
    assert isinstance(session.parsed, Session)
    check(session.parsed.user.username == username, "login answers the user")
    owner = AuthenticatedClient(base_url=base, token=session.parsed.token, raise_on_unexpected_status=True)

    # Upload: the multipart `file` field, then the raw bytes (application/octet-stream).
    multipart = UploadImageFilesBody(file=File(payload=BytesIO(png), file_name="walk.png", mime_type="image/png"))
    uploaded = upload_image.sync_detailed(client=owner, body=multipart)
    check(uploaded.status_code == 201 and isinstance(uploaded.parsed, Image), f"multipart upload: {uploaded}")
    assert isinstance(uploaded.parsed, Image)
    image = uploaded.parsed
    check(image.format_ == ImageFormat.PNG and image.width == 64 and image.height == 48, f"the image: {image}")
    raw = upload_image.sync_detailed(client=owner, body=File(payload=BytesIO(png)))
    check(raw.status_code == 201 and isinstance(raw.parsed, Image), f"raw upload: {raw}")
    assert isinstance(raw.parsed, Image)
    check(raw.parsed.content_hash == image.content_hash, "both uploads are the same bytes")

    # A signed, expiring URL for a WebP variant; its ops, exp and sig go to the generated /i call.
    signed = sign_url.sync_detailed(image.id, client=owner, body=UrlRequest(ops="w_32,fmt_webp", expires_in=600))
    check(signed.status_code == 200 and isinstance(signed.parsed, SignedUrl), f"sign: {signed}")
    assert isinstance(signed.parsed, SignedUrl)
    url = urlsplit(signed.parsed.url)
    prefix = f"/i/{image.id}/"
    check(url.path.startswith(prefix), f"signed URL {signed.parsed.url}")
    ops = url.path[len(prefix) :]
    query = parse_qs(url.query)
    sig, exp = query["sig"][0], int(query["exp"][0])
    check(ops == "w_32,fmt_webp", f"canonical ops {ops}")

    # The generated operation percent-encodes the path parameter (`w_32%2Cfmt_webp`).
    variant = deliver_variant.sync_detailed(image.id, ops, client=owner, sig=sig, exp=exp)
    check(variant.status_code == 200, f"variant: {variant.status_code} {variant.content[:200]!r}")
    check(variant.headers["content-type"] == "image/webp", f"content type {variant.headers['content-type']}")
    # Authorised by the signature, not the bearer token the client also sends: the owner's own
    # answers are `Cache-Control: private`.
    check("private" not in variant.headers["cache-control"], f"cache-control {variant.headers['cache-control']}")
    check(isinstance(variant.parsed, File), f"the body is bytes: {type(variant.parsed)}")
    assert isinstance(variant.parsed, File)
    webp = variant.parsed.payload.read()
    check(len(webp) > 12 and webp[:4] == b"RIFF" and webp[8:12] == b"WEBP", f"WebP magic: {webp[:12]!r}")
    check(int.from_bytes(webp[4:8], "little") == len(webp) - 8, "the RIFF size is the body's")

    # A signature for other ops is refused, in the one error model.
    tampered = deliver_variant.sync_detailed(image.id, "w_33,fmt_webp", client=owner, sig=sig, exp=exp)
    check(tampered.status_code == 403 and isinstance(tampered.parsed, ErrorResponse), f"tampered: {tampered}")
    assert isinstance(tampered.parsed, ErrorResponse)
    check(tampered.parsed.error.code == ErrorCode.BAD_SIGNATURE, f"code {tampered.parsed.error.code}")

    for stored in (image, raw.parsed):
        deleted = delete_image.sync_detailed(stored.id, client=owner)
        check(deleted.status_code == 204, f"delete: {deleted}")
    gone = get_image.sync_detailed(image.id, client=owner)
    check(gone.status_code == 404 and isinstance(gone.parsed, ErrorResponse), f"after delete: {gone}")
    assert isinstance(gone.parsed, ErrorResponse)
    check(gone.parsed.error.code == ErrorCode.NOT_FOUND, f"code {gone.parsed.error.code}")
    print(f"walk.py: register, upload ×2, sign, /i ({len(webp)} bytes of WebP), 403, delete, 404: passed")


if __name__ == "__main__":
    main()
