//! The catalogue's lists in the READMEs, written from the templates so they cannot drift
//! (`tests/catalogue_docs.rs` fails when a README is not what these functions write).

use super::{Catalogue, Category, ParamKind, Template};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Marks the generated part of the top-level README.
pub(crate) const BEGIN: &str = "<!-- templates:begin (written by `oauth-broker account-types templates --format markdown`) -->";
/// Ends the generated part of the top-level README.
pub(crate) const END: &str = "<!-- templates:end -->";

fn by_category(cat: &Catalogue) -> BTreeMap<Category, Vec<&Template>> {
    let mut groups: BTreeMap<Category, Vec<&Template>> = BTreeMap::new();
    for t in cat.iter() {
        groups.entry(t.category).or_default().push(t);
    }
    groups
}

/// The top-level README's list: each category, its count, its templates.
pub(crate) fn summary(cat: &Catalogue) -> String {
    let groups = by_category(cat);
    let mut out = format!(
        "{BEGIN}\n**{} templates** in {} categories:\n\n| category | count | templates |\n|---|---|---|\n",
        cat.len(),
        groups.len()
    );
    for (c, ts) in groups {
        let names: Vec<String> = ts.iter().map(|t| format!("`{}`", t.name)).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            c.title(),
            ts.len(),
            names.join(" ")
        );
    }
    out.push_str(END);
    out
}

fn delimiter(d: Option<&str>) -> String {
    match d {
        None | Some(" ") => "space".into(),
        Some(d) => format!("`{d}`"),
    }
}

/// `account_types/README.md`: every template, by category, with what it was checked against.
pub(crate) fn catalogue_readme(cat: &Catalogue) -> String {
    let mut out = String::from(HEAD.trim_start());
    let _ = writeln!(out, "\n## {} templates\n", cat.len());
    for (c, ts) in by_category(cat) {
        let _ = writeln!(out, "### {} ({})\n", c.title(), ts.len());
        out.push_str("| template | provider | token_mode | PKCE | scopes joined by | parameters | checked against | documentation |\n|---|---|---|---|---|---|---|---|\n");
        for t in ts {
            let doc = &t.doc;
            let s = |k: &str| doc.get(k).and_then(|v| v.as_str());
            let params: Vec<String> = t
                .params
                .iter()
                .map(|(k, p)| match &p.kind {
                    ParamKind::Choice(v) => format!("`{k}` ({})", v.join(", ")),
                    _ => format!("`{k}`"),
                })
                .collect();
            let mut against = t.source.checked_against.join("; ");
            if t.grant_differs.is_some() {
                against.push_str(" (differs from Grant, reason recorded)");
            }
            let _ = writeln!(
                out,
                "| `{}` | {} | `{}` | {} | {} | {} | {} ({}) | [docs]({}) |",
                t.name,
                t.display_name,
                s("token_mode").unwrap_or("form"),
                if doc.get("pkce").and_then(|v| v.as_bool()) == Some(true) {
                    "yes"
                } else {
                    "no"
                },
                delimiter(s("scope_delimiter")),
                params.join(", "),
                against,
                t.source.checked,
                t.source.docs
            );
        }
        out.push('\n');
    }
    out
}

const HEAD: &str = r#"
# Provider catalogue

<!-- written by `oauth-broker account-types templates --format catalogue`; tests/catalogue_docs.rs fails when it is stale -->

OAuth 2 providers as account-type templates: the shape of cozy-stack's
`io.cozy.account_types` documents, without credentials. The catalogue is built into the
binary; `--catalogue DIR` reads another folder.

```sh
oauth-broker account-types templates                         # list them (and how many)
oauth-broker account-types templates --category banking      # one category
oauth-broker account-types templates --name micro            # names or providers containing `micro`
oauth-broker account-types put google --client-id ID --client-secret-file ~/secrets/google
oauth-broker account-types put zoho --param region=eu --client-id ID --client-secret-file F
oauth-broker account-types diff google --client-id ID --client-secret-file F   # what put would change
oauth-broker dev login google --client-id ID --client-secret-file F           # a konnector developer's token
```

A template is an account type plus a `template` member:

- `name` and `category`: the provider for people, and what it is for;
- `source`: the provider's documentation (`docs`), the day the endpoints were checked
  (`checked`) and what they were checked against (`checked_against`: Grant 5.4's
  `config/oauth.json`, Nango's `providers.yaml` at a named commit, or the provider's
  documentation read that day);
- `grant_differs`: why the endpoints differ from Grant's list, when they do.
  `tests/catalogue_grant.rs` reads Grant's `oauth.json` (npm `grant`, installed by
  `scripts/test.sh`) and fails when a template's authorization or token URL differs from
  Grant's without this reason, when the reason is stale, or when a Grant OAuth 2 provider
  has neither a template nor a line in [`grant-not-templated.tsv`](grant-not-templated.tsv);
- `parameters`: what its `[name]` placeholders take (`label`: one DNS label such as a
  tenant; `host`: a host name; `host_path`: a host and a path such as a Keycloak realm;
  `choice`: one of the listed regional domains). Values are checked so that a parameter
  cannot move an endpoint to another host.

`scope` is the scope asked for when `start` names none; `scope_delimiter` is how the
provider joins scopes (the start scope is space-separated and is re-joined with it; the
query is form-encoded, so a space goes out as `+`).

Every file is parsed, instantiated with its parameters and validated by the tests
(`catalogue::tests`, `tests/cli.rs`).

## Looked for and not templated

French and European services that konnectors serve, and why they have no template (as of
the `checked` date of this catalogue):

- **Enedis Data Connect** and **GRDF ADICT**: the customer's consent is given on the
  provider's page, but tokens come from a `client_credentials` grant, not from an
  authorization code; there is no code for the broker to exchange.
- **FranceConnect**: its v2 documentation gives the integration hosts; the production host
  was not confirmed.
- **Infomaniak** (kDrive): its OAuth server issues identity tokens only; the data APIs take
  personal access tokens.
- **La Poste**, **SNCF Connect**, **Free**, **Doctolib**: no public OAuth 2 authorization
  flow for third parties (La Poste's developer APIs take an API key).
- **Banks' PSD2 APIs** (BNP Paribas, Société Générale, Crédit Agricole, ...): open to
  licensed third parties only, with eIDAS certificates on mutual TLS.
- **Revolut Business**, **DATEV**, **Twinfield**: a signed JWT client assertion, or an
  `id_token`/`nonce` response the broker does not ask for.
- **PayFit**: the only published token endpoint seen (Nango's list) is PagerDuty's, a
  copy-paste error; not templated until PayFit's own documentation is read.

Grant's providers without a template, and why, are in
[`grant-not-templated.tsv`](grant-not-templated.tsv).

## Licence of the endpoints

Where `checked_against` names Grant, `auth_endpoint`, `token_endpoint` and
`scope_delimiter` come from Grant's provider list (`config/oauth.json` of
https://github.com/simov/grant), MIT licence, Copyright (c) 2014-present Simeon Velichkov;
the full notice is in [`LICENSE-grant`](LICENSE-grant). The rest is ours.
"#;
