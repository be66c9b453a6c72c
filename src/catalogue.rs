//! Provider templates (`account_types/*.json`): account types without credentials.
//!
//! A template is an account-type document plus a `template` member (display name and the
//! parameters its `[name]` placeholders take). The catalogue is built into the binary, so
//! an operator needs nothing but the binary; `--catalogue DIR` reads another one.

mod category;
pub(crate) mod markdown;

pub(crate) use category::Category;

use crate::domain::account_type::{AccountType, AccountTypeError};
use include_dir::{include_dir, Dir};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

static BUILTIN: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/account_types");

/// Why a template or its instantiation is refused; names the template and the field.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// No such template in the catalogue.
    #[error(
        "no template `{0}` in the catalogue (`oauth-broker account-types templates` lists them)"
    )]
    Unknown(String),
    /// The file is not JSON, or not an object.
    #[error("{file}: {reason}")]
    Malformed {
        /// Template file name.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A field of the template, or of the document built from it, is wrong.
    // Not named `source`: the message already carries it, and a source would be printed
    // a second time by `{:#}` chains.
    #[error("{file}: {error}")]
    Field {
        /// Template file name.
        file: String,
        /// The field and what is wrong with it.
        error: AccountTypeError,
    },
    /// A catalogue folder could not be read.
    #[error("reading {0}: {1}")]
    Io(String, std::io::Error),
}

/// What a `[name]` placeholder may hold; checked so a value cannot move the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamKind {
    /// One DNS label: a tenant or region.
    Label,
    /// A host name, optionally with a port.
    Host,
    /// A host and a path (a Keycloak realm).
    HostPath,
    /// One of a fixed list (a provider's regional domains: `eu`, `com.au`, ...).
    Choice(Vec<String>),
}

impl ParamKind {
    fn parse(spec: &Value) -> Result<ParamKind, &'static str> {
        match spec.get("kind").and_then(Value::as_str) {
            Some("label") => Ok(ParamKind::Label),
            Some("host") => Ok(ParamKind::Host),
            Some("host_path") => Ok(ParamKind::HostPath),
            Some("choice") => {
                let values = string_list(spec.get("values")).unwrap_or_default();
                // A choice is spliced into a host name: each value must be labels, so that
                // no listed value can carry a path or another host.
                let dns = |v: &String| {
                    v.split('.').all(|l| {
                        !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    })
                };
                if values.is_empty() || !values.iter().all(dns) {
                    return Err(
                        "a `choice` needs `values`, a list of DNS labels such as `eu` or `com.au`",
                    );
                }
                Ok(ParamKind::Choice(values))
            }
            _ => Err("must be `label`, `host`, `host_path` or `choice`"),
        }
    }

    /// A value the parameter accepts, for checking a template once filled in.
    pub fn sample(&self) -> &str {
        match self {
            ParamKind::HostPath => "tenant.example/realms/r",
            ParamKind::Host => "tenant.example",
            ParamKind::Label => "tenant",
            ParamKind::Choice(values) => &values[0],
        }
    }

    fn accepts(&self, value: &str) -> bool {
        let label = |s: &str| {
            !s.is_empty()
                && s.len() <= 63
                && !s.starts_with('-')
                && !s.ends_with('-')
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        let host = |s: &str| {
            let (name, port) = match s.rsplit_once(':') {
                Some((n, p)) => (n, Some(p)),
                None => (s, None),
            };
            name.len() <= 253
                && name.split('.').all(label)
                && port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0))
        };
        match self {
            ParamKind::Choice(values) => values.iter().any(|v| v == value),
            ParamKind::Label => label(value),
            ParamKind::Host => host(value),
            ParamKind::HostPath => {
                let (h, path) = value.split_once('/').unwrap_or((value, ""));
                host(h)
                    && path.split('/').all(|seg| {
                        !seg.is_empty()
                            && seg != "."
                            && seg != ".."
                            && seg
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
                    })
                    || (host(h) && path.is_empty())
            }
        }
    }
}

/// One parameter of a template.
#[derive(Debug, Clone)]
pub struct Param {
    /// What values it accepts.
    pub kind: ParamKind,
    /// What to put there, for the operator.
    pub description: String,
}

/// Where a template's endpoints were checked, and when.
#[derive(Debug, Clone)]
pub struct Source {
    /// The provider's documentation of its OAuth flow.
    pub docs: url::Url,
    /// The day the endpoints were last checked (`YYYY-MM-DD`).
    pub checked: chrono::NaiveDate,
    /// What they were checked against (Grant's list, Nango's, the documentation).
    pub checked_against: Vec<String>,
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    /// Template name (the file stem, and the default document id).
    pub name: String,
    /// Provider name for people.
    pub display_name: String,
    /// What the provider is for.
    pub category: Category,
    /// Where its endpoints come from.
    pub source: Source,
    /// Why its endpoints differ from Grant's list, when they do (checked by a test).
    pub grant_differs: Option<String>,
    /// Placeholders and what they take.
    pub params: BTreeMap<String, Param>,
    doc: Map<String, Value>,
}

/// What turns a template into a storable account type.
#[derive(Debug, Default)]
pub struct Inputs {
    /// Document id; the template name when absent (`ctx/google` overloads for a context).
    pub id: Option<String>,
    /// OAuth client id.
    pub client_id: Option<String>,
    /// OAuth client secret.
    pub client_secret: Option<String>,
    /// Values of the template's placeholders.
    pub params: BTreeMap<String, String>,
    /// Registered redirect URI, when not the broker's default.
    pub redirect_uri: Option<String>,
}

impl Template {
    /// Parses a template file's text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Template, TemplateError> {
        let malformed = |reason: String| TemplateError::Malformed {
            file: file.to_owned(),
            reason,
        };
        let field = |f: &str, r: &str| TemplateError::Field {
            file: file.to_owned(),
            error: AccountTypeError {
                stays_on_stack: false,
                field: f.to_owned(),
                reason: r.to_owned(),
            },
        };
        let value: Value =
            serde_json::from_str(text).map_err(|e| malformed(format!("not JSON: {e}")))?;
        let Value::Object(mut doc) = value else {
            return Err(malformed("must be a JSON object".into()));
        };
        let name = match doc.get("_id") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(field("_id", "is required, a string")),
        };
        let stem = Path::new(file)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or(file);
        if name != stem {
            return Err(field("_id", &format!("must be the file name, `{stem}`")));
        }
        for secret in ["client_id", "client_secret"] {
            if doc.get(secret).is_some_and(|v| !v.is_null()) {
                return Err(field(
                    secret,
                    "a template carries no credentials; they are given when it is stored",
                ));
            }
        }
        let meta = match doc.remove("template") {
            Some(Value::Object(m)) => m,
            Some(_) => return Err(field("template", "must be an object")),
            None => Map::new(),
        };
        let display_name = match meta.get("name") {
            None => name.clone(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(field("template.name", "must be a string")),
        };
        let category = match meta.get("category").and_then(Value::as_str) {
            Some(raw) => Category::parse(raw).map_err(|r| field("template.category", &r))?,
            None => return Err(field("template.category", "is required")),
        };
        let source = parse_source(meta.get("source")).map_err(|(f, r)| field(&f, &r))?;
        let grant_differs = match meta.get("grant_differs") {
            None => None,
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            Some(_) => {
                return Err(field(
                    "template.grant_differs",
                    "must be a non-empty reason",
                ))
            }
        };
        let mut params = BTreeMap::new();
        match meta.get("parameters") {
            None => {}
            Some(Value::Object(ps)) => {
                for (p, spec) in ps {
                    let kind = ParamKind::parse(spec)
                        .map_err(|r| field(&format!("template.parameters.{p}.kind"), r))?;
                    let description = spec
                        .get("description")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    params.insert(p.clone(), Param { kind, description });
                }
            }
            Some(_) => return Err(field("template.parameters", "must be an object")),
        }
        let used = placeholders(&Value::Object(doc.clone()));
        for p in &used {
            if !params.contains_key(p) {
                return Err(field(
                    "template.parameters",
                    &format!("placeholder `[{p}]` is used but not declared"),
                ));
            }
        }
        if let Some(p) = params.keys().find(|p| !used.contains(*p)) {
            return Err(field(
                &format!("template.parameters.{p}"),
                "is declared but no endpoint uses it",
            ));
        }
        let t = Template {
            name,
            display_name,
            category,
            source,
            grant_differs,
            params,
            doc,
        };
        // Every template must make a valid account type once filled in.
        let sample = Inputs {
            client_id: Some("client-id".into()),
            client_secret: Some("client-secret".into()),
            params: t
                .params
                .iter()
                .map(|(k, p)| (k.clone(), p.kind.sample().to_owned()))
                .collect(),
            ..Inputs::default()
        };
        t.instantiate(file, sample)?;
        Ok(t)
    }

    /// The account-type document this template makes with `inputs`, validated.
    pub fn instantiate(&self, file: &str, inputs: Inputs) -> Result<Value, TemplateError> {
        let field = |f: String, r: String| TemplateError::Field {
            file: file.to_owned(),
            error: AccountTypeError {
                stays_on_stack: false,
                field: f,
                reason: r,
            },
        };
        for (k, v) in &inputs.params {
            let Some(p) = self.params.get(k) else {
                return Err(field(
                    format!("--param {k}"),
                    format!(
                        "template `{}` takes no such parameter ({})",
                        self.name,
                        self.param_list()
                    ),
                ));
            };
            if !p.kind.accepts(v) {
                return Err(field(
                    format!("--param {k}"),
                    match &p.kind {
                        ParamKind::Choice(values) => format!(
                            "`{v}` is not one of {} ({})",
                            values.join(", "),
                            p.description
                        ),
                        kind => format!("`{v}` is not a valid {kind:?} ({})", p.description),
                    },
                ));
            }
        }
        if let Some(missing) = self.params.keys().find(|k| !inputs.params.contains_key(*k)) {
            let p = &self.params[missing];
            return Err(field(
                format!("--param {missing}"),
                format!("is required: {}", p.description),
            ));
        }
        let mut doc = self.doc.clone();
        for v in doc.values_mut() {
            substitute(v, &inputs.params);
        }
        if let Some(id) = inputs.id {
            doc.insert("_id".into(), Value::String(id));
        }
        for (k, v) in [
            ("client_id", inputs.client_id),
            ("client_secret", inputs.client_secret),
            ("redirect_uri", inputs.redirect_uri),
        ] {
            if let Some(v) = v {
                doc.insert(k.into(), Value::String(v));
            }
        }
        let doc = Value::Object(doc);
        AccountType::from_document(&doc).map_err(|error| TemplateError::Field {
            file: file.to_owned(),
            error,
        })?;
        Ok(doc)
    }

    fn param_list(&self) -> String {
        if self.params.is_empty() {
            "it takes none".into()
        } else {
            self.params
                .keys()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
}

/// An array of strings; `None` for anything else, so that a stray number in a list is
/// refused rather than dropped.
fn string_list(v: Option<&Value>) -> Option<Vec<String>> {
    v?.as_array()?
        .iter()
        .map(|x| x.as_str().map(str::to_owned))
        .collect()
}

/// Reads `template.source`; an error names the field.
fn parse_source(raw: Option<&Value>) -> Result<Source, (String, String)> {
    let err = |f: &str, r: &str| (format!("template.source{f}"), r.to_owned());
    let Some(Value::Object(src)) = raw else {
        return Err(err("", "is required: {docs, checked, checked_against}"));
    };
    let docs = src
        .get("docs")
        .and_then(Value::as_str)
        .and_then(|d| url::Url::parse(d).ok())
        .filter(|u| u.scheme() == "https")
        .ok_or_else(|| {
            err(
                ".docs",
                "must be the https URL of the provider's documentation",
            )
        })?;
    let checked = src
        .get("checked")
        .and_then(Value::as_str)
        .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .ok_or_else(|| {
            err(
                ".checked",
                "must be the date the endpoints were checked, YYYY-MM-DD",
            )
        })?;
    let checked_against = string_list(src.get("checked_against")).unwrap_or_default();
    if checked_against.is_empty() {
        return Err(err(
            ".checked_against",
            "must list what the endpoints were checked against",
        ));
    }
    Ok(Source {
        docs,
        checked,
        checked_against,
    })
}

fn placeholders(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut walk = |s: &str| {
        let mut rest = s;
        while let Some(start) = rest.find('[') {
            let Some(len) = rest[start + 1..].find(']') else {
                break;
            };
            let name = &rest[start + 1..start + 1 + len];
            if !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                && !out.iter().any(|o| o == name)
            {
                out.push(name.to_owned());
            }
            rest = &rest[start + 1 + len..];
        }
    };
    fn strings<'a>(v: &'a Value, f: &mut dyn FnMut(&'a str)) {
        match v {
            Value::String(s) => f(s),
            Value::Object(m) => m.values().for_each(|v| strings(v, f)),
            Value::Array(a) => a.iter().for_each(|v| strings(v, f)),
            _ => {}
        }
    }
    strings(v, &mut walk);
    out
}

fn substitute(v: &mut Value, params: &BTreeMap<String, String>) {
    match v {
        Value::String(s) => {
            for (k, val) in params {
                *s = s.replace(&format!("[{k}]"), val);
            }
        }
        Value::Object(m) => m.values_mut().for_each(|v| substitute(v, params)),
        Value::Array(a) => a.iter_mut().for_each(|v| substitute(v, params)),
        _ => {}
    }
}

/// A set of templates, by name.
#[derive(Debug, Clone)]
pub struct Catalogue {
    templates: BTreeMap<String, (String, Template)>,
}

impl Catalogue {
    /// The catalogue built into the binary.
    pub fn builtin() -> Result<Catalogue, TemplateError> {
        let files = BUILTIN
            .files()
            .filter(|f| f.path().extension().is_some_and(|e| e == "json"))
            .map(|f| {
                (
                    f.path().display().to_string(),
                    f.contents_utf8().unwrap_or_default().to_owned(),
                )
            });
        Catalogue::from_files(files)
    }

    /// Reads every `*.json` template in `dir`.
    pub fn from_dir(dir: &Path) -> Result<Catalogue, TemplateError> {
        let io = |e| TemplateError::Io(dir.display().to_string(), e);
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| TemplateError::Io(path.display().to_string(), e))?;
                files.push((path.display().to_string(), text));
            }
        }
        Catalogue::from_files(files)
    }

    fn from_files(
        files: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Catalogue, TemplateError> {
        let mut templates = BTreeMap::new();
        for (file, text) in files {
            let t = Template::parse(&file, &text)?;
            templates.insert(t.name.clone(), (file, t));
        }
        Ok(Catalogue { templates })
    }

    /// The template called `name`, with the file it came from.
    pub fn get(&self, name: &str) -> Result<(&str, &Template), TemplateError> {
        self.templates
            .get(name)
            .map(|(f, t)| (f.as_str(), t))
            .ok_or_else(|| TemplateError::Unknown(name.to_owned()))
    }

    /// Every template, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Template> {
        self.templates.values().map(|(_, t)| t)
    }

    /// The templates whose name or provider contains `name` (any case) and, when given,
    /// of `category`.
    pub fn filter<'a>(
        &'a self,
        name: Option<&'a str>,
        category: Option<Category>,
    ) -> impl Iterator<Item = &'a Template> + 'a {
        let needle = name.map(str::to_lowercase);
        self.iter().filter(move |t| {
            category.is_none_or(|c| t.category == c)
                && needle.as_deref().is_none_or(|n| {
                    t.name.to_lowercase().contains(n) || t.display_name.to_lowercase().contains(n)
                })
        })
    }

    /// How many templates there are.
    pub fn len(&self) -> usize {
        self.templates.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zendesk() -> Template {
        Catalogue::builtin()
            .unwrap()
            .get("zendesk")
            .unwrap()
            .1
            .clone()
    }

    #[test]
    fn the_builtin_catalogue_has_at_least_250_valid_templates() {
        let c = Catalogue::builtin().unwrap();
        assert!(c.len() >= 250, "{}", c.len());
    }

    const META: &str = r#""template": {"category": "other", "source": {"docs": "https://p.example/docs",
        "checked": "2026-12-07", "checked_against": ["provider documentation"]}}"#;

    fn parse_with(meta: &str) -> Result<Template, TemplateError> {
        Template::parse(
            "x.json",
            &format!(
                r#"{{"_id": "x", "grant_mode": "authorization_code", "client_id": null,
                "auth_endpoint": "https://[region].p.example/a", {meta}}}"#
            ),
        )
    }

    #[test]
    fn a_template_without_a_category_or_source_is_refused() {
        let e = parse_with(r#""template": {}"#).unwrap_err();
        assert!(e.to_string().contains("template.category"), "{e}");
        let e = parse_with(r#""template": {"category": "banking"}"#).unwrap_err();
        assert!(e.to_string().contains("template.source"), "{e}");
    }

    #[test]
    fn a_source_needs_an_https_doc_a_date_and_what_was_checked() {
        for (source, bad) in [
            (
                r#"{"docs": "http://p.example", "checked": "2026-12-07", "checked_against": ["x"]}"#,
                "source.docs",
            ),
            (
                r#"{"docs": "https://p.example", "checked": "7/12/2026", "checked_against": ["x"]}"#,
                "source.checked",
            ),
            (
                r#"{"docs": "https://p.example", "checked": "2026-12-07", "checked_against": []}"#,
                "source.checked_against",
            ),
        ] {
            let e = parse_with(&format!(
                r#""template": {{"category": "other", "source": {source}}}"#
            ))
            .unwrap_err();
            assert!(e.to_string().contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn a_choice_parameter_takes_only_its_values() {
        let meta = META.replace(
            "}}",
            r#"}, "parameters": {"region": {"kind": "choice", "values": ["eu", "com.au"]}}}"#,
        );
        let t = parse_with(&meta).unwrap();
        let fill = |v: &str| {
            t.instantiate(
                "x.json",
                Inputs {
                    client_id: Some("c".into()),
                    params: [("region".into(), v.into())].into(),
                    ..Inputs::default()
                },
            )
        };
        assert_eq!(
            fill("com.au").unwrap()["auth_endpoint"],
            "https://com.au.p.example/a"
        );
        let e = fill("evil.example/x").unwrap_err();
        assert!(e.to_string().contains("not one of eu, com.au"), "{e}");
    }

    #[test]
    fn a_choice_value_that_is_not_dns_labels_is_refused() {
        let meta = META.replace(
            "}}",
            r#"}, "parameters": {"region": {"kind": "choice", "values": ["eu", "x/../y"]}}}"#,
        );
        let e = parse_with(&meta).unwrap_err();
        assert!(
            e.to_string().contains("template.parameters.region.kind"),
            "{e}"
        );
    }

    #[test]
    fn a_list_with_a_value_that_is_not_a_string_is_refused() {
        let meta = META.replace(
            "}}",
            r#"}, "parameters": {"region": {"kind": "choice", "values": ["eu", 3]}}}"#,
        );
        let e = parse_with(&meta).unwrap_err();
        assert!(
            e.to_string().contains("template.parameters.region.kind"),
            "{e}"
        );
        let meta = META.replace(r#"["provider documentation"]"#, r#"["grant", 5]"#);
        let e = parse_with(&meta).unwrap_err();
        assert!(e.to_string().contains("source.checked_against"), "{e}");
    }

    #[test]
    fn an_unknown_category_is_refused_by_name() {
        let e = parse_with(&META.replace("\"other\"", "\"bank\"")).unwrap_err();
        assert!(e.to_string().contains("unknown category `bank`"), "{e}");
    }

    #[test]
    fn a_parameter_fills_every_endpoint() {
        let doc = zendesk()
            .instantiate(
                "zendesk.json",
                Inputs {
                    client_id: Some("c".into()),
                    params: [("subdomain".into(), "acme".into())].into(),
                    ..Inputs::default()
                },
            )
            .unwrap();
        assert_eq!(
            doc["token_endpoint"],
            "https://acme.zendesk.com/oauth/tokens"
        );
        assert_eq!(
            doc["revocation_endpoint"],
            "https://acme.zendesk.com/oauth/tokens/revoke"
        );
        assert!(doc.get("template").is_none());
    }

    #[test]
    fn a_parameter_that_would_move_the_endpoint_is_refused() {
        for bad in ["evil.example/x", "a@b", "acme.zendesk.com#", "", "-a"] {
            let err = zendesk()
                .instantiate(
                    "zendesk.json",
                    Inputs {
                        client_id: Some("c".into()),
                        params: [("subdomain".into(), bad.into())].into(),
                        ..Inputs::default()
                    },
                )
                .unwrap_err();
            assert!(
                err.to_string().contains("--param subdomain"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn a_missing_parameter_is_named() {
        let err = zendesk()
            .instantiate("zendesk.json", Inputs::default())
            .unwrap_err();
        assert!(err.to_string().contains("--param subdomain"), "{err}");
    }

    #[test]
    fn host_path_accepts_a_realm_and_refuses_dot_segments() {
        assert!(ParamKind::HostPath.accepts("sso.example.org/realms/main"));
        assert!(ParamKind::HostPath.accepts("sso.example.org:8443"));
        assert!(!ParamKind::HostPath.accepts("sso.example.org/../x"));
        assert!(!ParamKind::HostPath.accepts("sso.example.org/a?b"));
    }

    #[test]
    fn a_template_with_credentials_is_refused() {
        let err = Template::parse(
            "x.json",
            r#"{"_id": "x", "grant_mode": "authorization_code", "client_id": "leak",
                "auth_endpoint": "https://p.example/a"}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("x.json: field `client_id`"),
            "{err}"
        );
    }

    #[test]
    fn an_undeclared_placeholder_is_refused() {
        let err = Template::parse(
            "x.json",
            &format!(
                r#"{{"_id": "x", "grant_mode": "authorization_code",
                "auth_endpoint": "https://[tenant].p.example/a", {META}}}"#
            ),
        )
        .unwrap_err();
        assert!(err.to_string().contains("[tenant]"), "{err}");
    }
}
