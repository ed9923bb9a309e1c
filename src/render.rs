//! Templates for the mail the desk writes (acknowledgements), with minijinja.
//!
//! A template file `ack.<lang>.txt` starts with a `Subject: ...` line, then
//! a blank line, then the body. A language without a template falls back to
//! the config's default language. An optional `ack.<lang>.html` next to it
//! is sent as the HTML alternative of the same message; minijinja escapes
//! every value in `.html` templates (customer subjects and names are
//! untrusted), never in `.txt` ones.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use minijinja::Environment;
use serde::{Deserialize, Serialize};

pub struct Renderer {
    env: Environment<'static>,
    default_language: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AckContext {
    pub desk_name: String,
    pub reference: String,
    pub subject: String,
    pub customer_name: Option<String>,
    pub customer_email: String,
    pub language: String,
    pub plan: String,
    pub category: Option<String>,
    pub priority: Option<String>,
    /// Local time in the calendar's (or customer's) zone, or None when best effort.
    pub first_response_due: Option<String>,
    /// The first response was due before the acknowledgement went out
    /// (the mail waited while the desk was down): no time is promised.
    #[serde(default)]
    pub first_response_overdue: bool,
    pub resolution_due: Option<String>,
    pub received_at: String,
    /// `[desk] template_vars`.
    pub vars: std::collections::BTreeMap<String, String>,
}

pub struct Rendered {
    pub subject: String,
    pub body: String,
    /// From `<kind>.<lang>.html`, when there is one.
    pub html: Option<String>,
}

fn is_template(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("txt" | "html")
    )
}

impl Renderer {
    /// Loads every `*.txt` and `*.html` template in `dir`, failing on a syntax error.
    pub fn load(dir: &Path, default_language: &str) -> Result<Renderer> {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("Reading templates in {}", dir.display()))?;
        for entry in entries {
            let path = entry.context("Listing templates")?.path();
            if !is_template(&path) {
                continue;
            }
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let src = std::fs::read_to_string(&path)
                .with_context(|| format!("Reading template {}", path.display()))?;
            env.add_template_owned(name.to_string(), src)
                .with_context(|| format!("Template {} has a syntax error", path.display()))?;
        }
        let r = Renderer {
            env,
            default_language: default_language.to_string(),
        };
        if r.env
            .get_template(&format!("ack.{default_language}.txt"))
            .is_err()
        {
            return Err(anyhow!(
                "No template ack.{default_language}.txt for the default language in {}",
                dir.display()
            ));
        }
        Ok(r)
    }

    /// Renders `kind` (e.g. "ack") in `language`, or in the default language
    /// when there is no such template. Returns the language used too.
    pub fn render(
        &self,
        kind: &str,
        language: &str,
        ctx: &impl Serialize,
    ) -> Result<(String, Rendered)> {
        let (lang, tmpl) = match self.env.get_template(&format!("{kind}.{language}.txt")) {
            Ok(t) => (language, t),
            Err(_) => (
                self.default_language.as_str(),
                self.env
                    .get_template(&format!("{kind}.{}.txt", self.default_language))
                    .with_context(|| format!("No {kind} template for {}", self.default_language))?,
            ),
        };
        let text = tmpl
            .render(ctx)
            .with_context(|| format!("Rendering {kind}.{lang}.txt"))?;
        let mut rendered = split_subject(&text)?;
        // The HTML part is optional: if it fails to render (an error that
        // depends on this message's data), the mail goes out as text only
        // rather than not at all.
        if let Ok(html) = self.env.get_template(&format!("{kind}.{lang}.html")) {
            match html.render(ctx) {
                Ok(h) => rendered.html = Some(h),
                Err(e) => {
                    tracing::warn!("{kind}.{lang}.html failed to render, sending text only: {e:#}")
                }
            }
        }
        Ok((lang.to_string(), rendered))
    }
}

impl Renderer {
    /// Renders every `kind.*.txt` template with each sample context, so an
    /// unknown variable (or a missing `Subject:` line) is found by
    /// `check-config` rather than by the first customer.
    /// The language `render` uses for `kind` in `language`: its own when
    /// it has a template, else the default one.
    pub fn language_for<'a>(&'a self, kind: &str, language: &'a str) -> &'a str {
        if self
            .env
            .get_template(&format!("{kind}.{language}.txt"))
            .is_ok()
        {
            language
        } else {
            &self.default_language
        }
    }

    /// Whether `kind` has a template for the default language (the one
    /// every other language falls back to).
    pub fn has_default(&self, kind: &str) -> bool {
        self.env
            .get_template(&format!("{kind}.{}.txt", self.default_language))
            .is_ok()
    }

    pub fn check_kind(&self, kind: &str, samples: &[serde_json::Value]) -> Result<usize> {
        let prefix = format!("{kind}.");
        let mut checked = 0;
        for (name, tmpl) in self.env.templates() {
            if !name.starts_with(&prefix) {
                continue;
            }
            for sample in samples {
                let text = tmpl
                    .render(sample)
                    .with_context(|| format!("Template {name}"))?;
                if name.ends_with(".txt") {
                    split_subject(&text).with_context(|| format!("Template {name}"))?;
                }
            }
            checked += 1;
        }
        Ok(checked)
    }
}

fn split_subject(text: &str) -> Result<Rendered> {
    let text = text.trim_start_matches('\u{feff}');
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    let subject = first
        .trim_end_matches('\r')
        .strip_prefix("Subject:")
        .ok_or_else(|| anyhow!("A template must start with a `Subject:` line"))?
        .trim()
        .to_string();
    let body = rest.trim_start_matches(['\r', '\n']).to_string();
    Ok(Rendered {
        subject,
        body,
        html: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A notice never shows a missing value: `left` exists only in a
    /// warning, `late_by` only in a breach or second level, so a template
    /// that prints one where the notice has not got it fails
    /// check-config's sample rendering.
    #[test]
    fn a_notice_template_printing_a_missing_value_fails_the_check() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ack.en.txt"), "Subject: x\n\nHello\n").unwrap();
        let samples = crate::escalate::sample_contexts();
        std::fs::write(
            dir.path().join("escalation.en.txt"),
            "Subject: [{{ level }}] {{ reference }}\n\nDue in {{ left }}.\n",
        )
        .unwrap();
        let r = Renderer::load(dir.path(), "en").unwrap();
        let e = r.check_kind("escalation", &samples).unwrap_err();
        assert!(format!("{e:#}").contains("escalation.en.txt"), "{e:#}");
        // The shipped templates pass.
        let shipped = Renderer::load(
            Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/templates")),
            "en",
        )
        .unwrap();
        assert_eq!(shipped.check_kind("escalation", &samples).unwrap(), 2);
    }

    #[test]
    fn falls_back_to_default_language() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("ack.en.txt"),
            "Subject: [{{ reference }}] {{ subject }}\n\nHello {{ customer_email }}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("ack.fr.txt"),
            "Subject: [{{ reference }}] Re\n\nBonjour\n",
        )
        .unwrap();
        let r = Renderer::load(dir.path(), "en").unwrap();
        let ctx = serde_json::json!({"reference": "SUP-000001", "subject": "Help", "customer_email": "a@b.c"});
        let (lang, out) = r.render("ack", "de", &ctx).unwrap();
        assert_eq!(lang, "en");
        assert_eq!(out.subject, "[SUP-000001] Help");
        assert_eq!(out.body, "Hello a@b.c\n");
        let (lang, out) = r.render("ack", "fr", &ctx).unwrap();
        assert_eq!(lang, "fr");
        assert_eq!(out.body, "Bonjour\n");
    }

    #[test]
    fn html_templates_escape_customer_text_and_text_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("ack.en.txt"),
            "Subject: [{{ reference }}] {{ subject }}\n\nHello {{ customer_name }}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("ack.en.html"),
            "<p>Hello {{ customer_name }}, about {{ subject }}</p>\n",
        )
        .unwrap();
        let r = Renderer::load(dir.path(), "en").unwrap();
        let ctx = serde_json::json!({
            "reference": "SUP-000001",
            "subject": "<script>alert(1)</script> & \"x\"",
            "customer_name": "<b>Eve</b>",
        });
        let (_, out) = r.render("ack", "en", &ctx).unwrap();
        assert_eq!(
            out.subject,
            "[SUP-000001] <script>alert(1)</script> & \"x\""
        );
        assert_eq!(out.body, "Hello <b>Eve</b>\n");
        let html = out.html.unwrap();
        assert_eq!(
            html,
            "<p>Hello &lt;b&gt;Eve&lt;&#x2f;b&gt;, about &lt;script&gt;alert(1)&lt;&#x2f;script&gt; &amp; &quot;x&quot;</p>\n"
        );
        // A language with a text template but no HTML one sends text only.
        std::fs::write(dir.path().join("ack.fr.txt"), "Subject: x\n\nBonjour\n").unwrap();
        let r = Renderer::load(dir.path(), "en").unwrap();
        assert!(r.render("ack", "fr", &ctx).unwrap().1.html.is_none());
    }

    #[test]
    fn missing_variable_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ack.en.txt"), "Subject: {{ nope }}\n\nx").unwrap();
        let r = Renderer::load(dir.path(), "en").unwrap();
        assert!(r.render("ack", "en", &serde_json::json!({})).is_err());
    }
}
