//! The README's signing recipes, run as a user would run them, against a live server.

use std::process::Command;

use serde_json::Value;

use crate::fixtures::{decode, halves_jpeg};
use crate::harness::{spawn_on, Backend, Env};

/// The first fenced block of `language` after `heading` in the README.
fn readme_block(heading: &str, language: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = &readme[readme.find(heading).unwrap_or_else(|| panic!("README has no {heading}"))..];
    let fence = format!("```{language}\n");
    let start = section.find(&fence).unwrap_or_else(|| panic!("no {language} block after {heading}")) + fence.len();
    section[start..][..section[start..].find("```").unwrap()].to_owned()
}

/// Tests that run tools nobody installs with cargo — Chromium, Go, Node.js, schemathesis — (the
/// `tools` tier of `tests/run`, which installs them).
mod needs_tools {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_readme_signing_recipes_work() {
        // The recipes read the real time, so this server does too.
        let env = std::sync::Arc::new(Env::new(Backend::Sqlite).await);
        let app = spawn_on(env.clone(), env.config(), imgedge::clock::Clock::system()).await;
        let alice = app.register("alice").await;
        let id = app.upload(&alice, halves_jpeg(400, 200)).await["id"].as_str().unwrap().to_owned();
        let key = hex::encode(&alice.key);
        let dir = tempfile::tempdir().unwrap();

        let shell = readme_block("### Signing a URL", "sh");
        let out = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &shell])
            .current_dir(dir.path())
            .envs([("KEY", key.as_str()), ("ID", id.as_str()), ("B", app.url("").as_str())])
            .output()
            .expect("bash runs");
        assert!(out.status.success(), "shell recipe failed: {}", String::from_utf8_lossy(&out.stderr));
        let fetched = std::fs::read(dir.path().join("out.webp")).unwrap();
        assert!(fetched.starts_with(b"RIFF"));
        assert_eq!(image::GenericImageView::dimensions(&decode(&fetched)), (300, 150));

        // Each language's recipe signs the same path with and without an expiry.
        let path = format!("/i/{id}/w_100,fmt_png");
        let python = readme_block("### Signing a URL", "python");
        let python = format!("{python}\nprint(sign({key:?}, '{path}', 60))\nprint(sign({key:?}, '{path}'))\n");
        let node = readme_block("### Signing a URL", "js");
        let node =
            format!("{node}\nconsole.log(sign({key:?}, {path:?}, 60));\nconsole.log(sign({key:?}, {path:?}));\n");
        let go = readme_block("### Signing a URL", "go");
        let go = format!(
            "package main\n\n{go}\nfunc main() {{\n\tfor _, e := range []int64{{60, 0}} {{\n\t\turl, err := Sign({key:?}, {path:?}, e)\n\t\tif err != nil {{\n\t\t\tpanic(err)\n\t\t}}\n\t\tfmt.Println(url)\n\t}}\n}}\n"
        );
        std::fs::write(dir.path().join("main.go"), &go).unwrap();
        let runs = [
            ("python", Command::new("python3").args(["-c", &python]).output()),
            ("node", Command::new("node").args(["-e", &node]).output()),
            (
                "go",
                Command::new("go")
                    .args(["run", "main.go"])
                    .current_dir(dir.path())
                    .env("GOCACHE", dir.path().join("gocache"))
                    .env("GOPATH", dir.path().join("gopath"))
                    .env("GO111MODULE", "off")
                    .output(),
            ),
        ];
        let mut signed = Vec::new();
        for (language, out) in runs {
            let out = out.unwrap_or_else(|e| panic!("{language} runs (tests/run installs it): {e}"));
            assert!(out.status.success(), "{language} recipe failed: {}", String::from_utf8_lossy(&out.stderr));
            let urls: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(String::from).collect();
            assert!(urls.len() == 2 && urls[0].contains("?exp=") && !urls[1].contains("exp="), "{language}: {urls:?}");
            for url in &urls {
                let res = app.get(url).await;
                assert_eq!(res.status(), 200, "{language}: {url}");
                let png = res.bytes().await.unwrap();
                assert_eq!(image::GenericImageView::dimensions(&decode(&png)), (100, 50));
            }
            signed.push(urls);
        }
        // Without an expiry the recipes agree to the byte.
        assert!(signed.iter().all(|urls| urls[1] == signed[0][1]), "{signed:?}");
        let urls = &signed[0];
        // The recipe's signature opens only the path it signed.
        let (_, query) = urls[1].split_once('?').unwrap();
        let res = app.get(&format!("/i/{id}/w_101,fmt_png?{query}")).await;
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "bad_signature");
    }
}
