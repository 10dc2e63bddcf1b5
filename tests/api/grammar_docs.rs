//! The ops grammar has one home, `imgedge::transform::grammar::TOKENS` (whose word lists parsing
//! and printing use): every other description of it — the README, docs/api.md, the OpenAPI
//! document, the console's fields and the schemathesis dictionary — is held to it here.

use imgedge::transform::grammar::{Token, TOKENS};

fn read(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// The spellings of `token` a reader must find: `w_N`, `fit_cover`, `gray`, ….
fn spellings(token: &Token) -> Vec<(String, &'static str)> {
    token
        .forms
        .iter()
        .map(
            |form| {
                if form.is_empty() {
                    (token.name.to_owned(), *form)
                } else {
                    (format!("{}_{form}", token.name), *form)
                }
            },
        )
        .collect()
}

/// Every spelling of every token that `text` does not name. A word of a list may be written
/// alone beside the token's first spelling (`fit_cover` / `contain`, or `fit_cover|contain`).
fn missing(text: &str) -> Vec<String> {
    let mut missing = Vec::new();
    for token in TOKENS {
        let prefix = format!("`{}_", token.name);
        let lines: Vec<&str> = text.lines().filter(|l| l.contains(&prefix)).collect();
        for (spelled, form) in spellings(token) {
            let named = text.contains(&format!("`{spelled}`"))
                || (!form.is_empty()
                    && lines.iter().any(|l| {
                        [format!("`{form}`"), format!("|{form}|"), format!("|{form}`"), format!("_{form}|")]
                            .iter()
                            .any(|p| l.contains(p.as_str()))
                    }));
            if !named {
                missing.push(spelled);
            }
        }
    }
    missing
}

/// The lines of the ops table of a Markdown file: from `heading` to the next heading.
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let start = text.find(heading).unwrap_or_else(|| panic!("no {heading}"));
    let rest = &text[start + heading.len()..];
    &rest[..rest.find("\n#").unwrap_or(rest.len())]
}

#[test]
fn the_readme_and_the_api_reference_name_every_token() {
    let readme = read("README.md");
    assert_eq!(missing(section(&readme, "## URLs and transformations")), Vec::<String>::new(), "README");
    let api = read("docs/api.md");
    assert_eq!(missing(section(&api, "## Ops grammar")), Vec::<String>::new(), "docs/api.md");
}

#[test]
fn the_openapi_document_names_every_token() {
    let document: serde_json::Value = serde_json::from_str(&read("docs/openapi.json")).unwrap();
    let ops = document["components"]["parameters"].as_object().unwrap().values().find(|p| p["name"] == "ops");
    let description = ops.unwrap()["description"].as_str().unwrap();
    assert_eq!(missing(description), Vec::<String>::new(), "the ops parameter of docs/openapi.json");
}

#[test]
fn the_console_offers_the_grammars_words_and_bounds() {
    let words = |name: &str| TOKENS.iter().find(|t| t.name == name).unwrap().forms.to_vec();
    let page = read("src/http/console/index.html");
    let script = read("src/http/console/console.js");
    // The select lists: every option value (but the empty default) is a word of the token.
    for (select, token) in [("ops-fit", "fit"), ("ops-format", "fmt")] {
        let start = page.find(&format!("<select id=\"{select}\">")).unwrap();
        let list = &page[start..start + page[start..].find("</select>").unwrap()];
        let mut options: Vec<&str> =
            list.split("value=\"").skip(1).filter_map(|v| v.split('"').next()).filter(|v| !v.is_empty()).collect();
        let mut expected = words(token);
        options.sort_unstable();
        expected.sort_unstable();
        assert_eq!(options, expected, "#{select}");
    }
    // The script's own lists and bound.
    let list = |name: &str| {
        let start = script.find(&format!("const {name} = [")).unwrap_or_else(|| panic!("console.js has no {name}"));
        let text = &script[start..start + script[start..].find(']').unwrap()];
        text.split('"').skip(1).step_by(2).map(str::to_owned).collect::<Vec<_>>()
    };
    assert_eq!(list("FITS"), words("fit"));
    assert_eq!(list("FORMATS"), words("fmt"));
    // The quality field takes N and every word of q_; its suggestions are those words.
    let quality_words: Vec<String> = words("q").into_iter().filter(|w| *w != "N").map(str::to_owned).collect();
    assert_eq!(list("QUALITY_WORDS"), quality_words);
    let start = page.find("<datalist id=\"ops-quality-words\">").expect("#ops-quality-words");
    let datalist = &page[start..start + page[start..].find("</datalist>").unwrap()];
    let suggested: Vec<String> =
        datalist.split("value=\"").skip(1).filter_map(|v| v.split('"').next()).map(str::to_owned).collect();
    assert_eq!(suggested, quality_words, "#ops-quality-words");
    assert!(page.contains("id=\"ops-quality\" type=\"text\" list=\"ops-quality-words\""), "#ops-quality");
    let max = imgedge::Config::embedded("/tmp").limits.max_dimension;
    assert!(script.contains(&format!("const MAX_DIMENSION = {max};")), "console.js bounds w_ and h_ at {max}");
    for input in ["ops-width", "ops-height"] {
        assert!(page.contains(&format!("id=\"{input}\" type=\"number\" min=\"1\" max=\"{max}\"")), "#{input}");
    }
}

#[test]
fn the_schemathesis_dictionary_holds_only_tokens_and_every_name() {
    let script = read("tests/schemathesis/run.sh");
    let start = script.find("[dictionaries.ops]").unwrap();
    let list = &script[start..];
    let list = &list[list.find("values = [").unwrap()..];
    let list = &list[..list.find(']').unwrap()];
    let values: Vec<String> = list.split('"').skip(1).step_by(2).map(str::to_owned).collect();
    for value in &values {
        let probe = value.replace("$image_id", "AAAAAAAAAAAAAAAAAAAAAA").replace("p_st_card", "");
        assert!(imgedge::transform::parse(&probe, 8192).is_ok(), "{value} does not parse");
    }
    for token in TOKENS {
        let named = values.iter().any(|v| v == token.name || v.starts_with(&format!("{}_", token.name)));
        assert!(named, "the dictionary never tries `{}`", token.name);
    }
}
