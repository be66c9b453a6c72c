#!/usr/bin/env python3
"""Writes the provider templates in account_types/ from Grant's provider list.

Endpoints and scope delimiters come from ../shared/data/grant/oauth.json (Grant, MIT,
copyright Simeon Velichkov; notice in account_types/LICENSE-grant). What Grant does not
know (token_mode, extras, PKCE, revocation, default scope) is ours, in CURATED below.
Run it again after editing CURATED; it rewrites every template it lists.
"""
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(ROOT, "..", "shared", "data", "grant", "oauth.json")
OUT = os.path.join(ROOT, "account_types")

# name: (display name, token_mode, extras, pkce, revocation_endpoint, default scope)
# token_mode: form (client_secret_post), basic (client_secret_basic), get (credentials in
# a GET query: Deezer, VK), json (a JSON body).
CURATED = {
    "amazon": ("Login with Amazon", "form", {}, True, None, "profile"),
    "asana": ("Asana", "form", {}, True, "https://app.asana.com/-/oauth_revoke", None),
    "atlassian": ("Atlassian (Jira, Confluence)", "form",
                  {"audience": "api.atlassian.com", "prompt": "consent"}, True, None,
                  "offline_access read:me"),
    "auth0": ("Auth0", "form", {}, True, "https://[subdomain].auth0.com/oauth/revoke",
              "openid profile email offline_access"),
    "authentik": ("authentik", "form", {}, True, None, "openid profile email offline_access"),
    "basecamp": ("Basecamp", "form", {"type": "web_server"}, False, None, None),
    "battlenet": ("Battle.net", "basic", {}, False, None, "openid"),
    "bitbucket": ("Bitbucket", "basic", {}, False, None, None),
    "box": ("Box", "form", {}, False, "https://api.box.com/oauth2/revoke", None),
    "buffer": ("Buffer", "form", {}, False, None, None),
    "clio": ("Clio", "form", {}, False, None, None),
    "cognito": ("Amazon Cognito", "basic", {}, True, "https://[subdomain]/oauth2/revoke",
                "openid email"),
    "coinbase": ("Coinbase", "form", {}, True, "https://api.coinbase.com/oauth/revoke", None),
    "constantcontact": ("Constant Contact", "basic", {}, True, None, "offline_access"),
    "dailymotion": ("Dailymotion", "form", {}, False, None, None),
    "deezer": ("Deezer", "get", {"perms": "offline_access"}, False, None, None),
    "deviantart": ("DeviantArt", "form", {}, False, "https://www.deviantart.com/oauth2/revoke", None),
    "digitalocean": ("DigitalOcean", "form", {}, False,
                     "https://cloud.digitalocean.com/v1/oauth/revoke", "read"),
    "discord": ("Discord", "form", {}, True, "https://discord.com/api/oauth2/token/revoke",
                "identify"),
    "docusign": ("DocuSign", "basic", {}, True, None, "signature"),
    "dropbox": ("Dropbox", "form", {"token_access_type": "offline"}, True, None, None),
    "ebay": ("eBay", "basic", {}, False, None, None),
    "egnyte": ("Egnyte", "form", {}, False, None, None),
    "eventbrite": ("Eventbrite", "form", {}, False, None, None),
    "facebook": ("Facebook", "form", {}, False, None, None),
    "figma": ("Figma", "basic", {}, True, None, "file_read"),
    "fitbit": ("Fitbit", "basic", {}, True, "https://api.fitbit.com/oauth2/revoke",
               "profile activity"),
    "freeagent": ("FreeAgent", "basic", {}, False, None, None),
    "fusionauth": ("FusionAuth", "form", {}, True, None, "openid offline_access"),
    "github": ("GitHub", "form", {}, True, None, None),
    "gitlab": ("GitLab", "form", {}, True, "https://gitlab.com/oauth/revoke", "read_user"),
    "google": ("Google", "form", {"access_type": "offline", "prompt": "consent"}, True,
               "https://oauth2.googleapis.com/revoke", "openid email"),
    "harvest": ("Harvest", "form", {}, False, None, None),
    "heroku": ("Heroku", "form", {}, False, None, "identity"),
    "imgur": ("Imgur", "form", {}, False, None, None),
    "instagram": ("Instagram", "form", {}, False, None, None),
    "intuit": ("Intuit (QuickBooks)", "basic", {}, False,
               "https://developer.api.intuit.com/v2/oauth2/tokens/revoke", "openid email"),
    "kakao": ("Kakao", "form", {}, True, None, None),
    "keycloak": ("Keycloak", "form", {}, True, "https://[subdomain]/protocol/openid-connect/revoke",
                 "openid offline_access"),
    "line": ("LINE Login", "form", {}, True, "https://api.line.me/oauth2/v2.1/revoke",
             "openid profile"),
    "linkedin": ("LinkedIn", "form", {}, False, None, "openid profile email"),
    "mailchimp": ("Mailchimp", "form", {}, False, None, None),
    "mastodon": ("Mastodon", "form", {}, True, "https://[subdomain]/oauth/revoke", "read"),
    "meetup": ("Meetup", "form", {}, False, None, None),
    "mendeley": ("Mendeley", "basic", {}, False, None, "all"),
    "microsoft": ("Microsoft identity platform", "form", {}, True, None,
                  "offline_access User.Read"),
    "naver": ("Naver", "form", {}, False, None, None),
    "netlify": ("Netlify", "form", {}, False, None, None),
    "notion": ("Notion", "basic", {"owner": "user"}, False, None, None),
    "okta": ("Okta", "form", {}, True, "https://[subdomain].okta.com/oauth2/v1/revoke",
             "openid offline_access"),
    "onelogin": ("OneLogin", "form", {}, True, "https://[subdomain].onelogin.com/oidc/token/revocation",
                 "openid"),
    "osu": ("osu!", "form", {}, False, None, "identify"),
    "patreon": ("Patreon", "form", {}, False, None, "identity"),
    "paypal": ("PayPal", "basic", {}, False, None, "openid email"),
    "pinterest": ("Pinterest", "basic", {}, False, None, "user_accounts:read"),
    "podio": ("Podio", "form", {}, False, None, None),
    "procore": ("Procore", "form", {}, False, "https://login.procore.com/oauth/revoke", None),
    "reddit": ("Reddit", "basic", {"duration": "permanent"}, False,
               "https://www.reddit.com/api/v1/revoke_token", "identity"),
    "salesforce": ("Salesforce", "form", {}, True,
                   "https://login.salesforce.com/services/oauth2/revoke", "refresh_token api"),
    "shopify": ("Shopify", "form", {}, False, None, None),
    "slack": ("Slack", "form", {}, False, None, None),
    "smartsheet": ("Smartsheet", "form", {}, False, None, None),
    "snowflake": ("Snowflake", "basic", {}, True, None, "refresh_token"),
    "soundcloud": ("SoundCloud", "form", {}, True, None, None),
    "spotify": ("Spotify", "basic", {}, True, None, "user-read-email"),
    "square": ("Square", "json", {}, True, "https://connect.squareup.com/oauth2/revoke", None),
    "strava": ("Strava", "form", {"approval_prompt": "auto"}, False,
               "https://www.strava.com/oauth/deauthorize", "read"),
    "stripe": ("Stripe Connect", "form", {}, False, None, "read_write"),
    "surveymonkey": ("SurveyMonkey", "form", {}, False, None, None),
    "todoist": ("Todoist", "form", {}, False, None, "data:read"),
    "trakt": ("Trakt", "form", {}, True, "https://api.trakt.tv/oauth/revoke", None),
    "twitch": ("Twitch", "form", {}, False, "https://id.twitch.tv/oauth2/revoke", "user:read:email"),
    "twitter2": ("X (Twitter) OAuth 2.0", "basic", {}, True,
                 "https://api.twitter.com/2/oauth2/revoke",
                 "tweet.read users.read offline.access"),
    "typeform": ("Typeform", "form", {}, False, None, "accounts:read offline"),
    "vimeo": ("Vimeo", "basic", {}, True, None, "public"),
    "vk": ("VK", "get", {}, False, None, None),
    "withings": ("Withings", "form", {}, False, None, "user.info"),
    "wordpress": ("WordPress.com", "form", {}, False, None, None),
    "wrike": ("Wrike", "form", {}, False, None, None),
    "yahoo": ("Yahoo", "basic", {}, True, None, "openid"),
    "yandex": ("Yandex", "basic", {}, True, None, None),
    "zendesk": ("Zendesk", "form", {}, True, "https://[subdomain].zendesk.com/oauth/tokens/revoke",
                "read"),
    "zoom": ("Zoom", "basic", {}, True, "https://zoom.us/oauth/revoke", None),
}

# What a `[name]` placeholder holds, by provider: `label` (one DNS label, e.g. a tenant),
# `host` (a host name), `host_path` (a host and a path, e.g. a Keycloak realm).
PARAMETERS = {
    "auth0": {"subdomain": ("label", "tenant name, as in <tenant>.auth0.com")},
    "authentik": {"subdomain": ("host", "host name of the authentik server")},
    "battlenet": {"subdomain": ("label", "region: eu, us, kr, tw or cn")},
    "cognito": {"subdomain": ("host", "host name of the user pool domain")},
    "egnyte": {"subdomain": ("label", "Egnyte domain, as in <domain>.egnyte.com")},
    "fusionauth": {"subdomain": ("host", "host name of the FusionAuth server")},
    "keycloak": {"subdomain": ("host_path", "host and realm path, e.g. sso.example.org/realms/main")},
    "mastodon": {"subdomain": ("host", "host name of the Mastodon server, e.g. mastodon.social")},
    "okta": {"subdomain": ("label", "Okta org, as in <org>.okta.com")},
    "onelogin": {"subdomain": ("label", "OneLogin subdomain, as in <name>.onelogin.com")},
    "shopify": {"subdomain": ("label", "shop name, as in <shop>.myshopify.com")},
    "snowflake": {"subdomain": ("host", "account identifier, as in <account>.snowflakecomputing.com")},
    "zendesk": {"subdomain": ("label", "Zendesk subdomain, as in <name>.zendesk.com")},
}

README_HEAD = """# Provider catalogue

<!-- written by scripts/catalogue.py: edit CURATED there and run it again -->

{count} OAuth 2 providers as account-type templates: the shape of cozy-stack's
`io.cozy.account_types` documents, without credentials. The catalogue is built into the
binary; `--catalogue DIR` reads another folder.

```sh
oauth-broker account-types templates                      # list them
oauth-broker account-types put google --client-id ID --client-secret-file ~/secrets/google
oauth-broker account-types put zendesk --param subdomain=acme --client-id ID --client-secret-file F
oauth-broker account-types diff google --client-id ID --client-secret-file F   # what put would change
oauth-broker dev login google --client-id ID --client-secret-file F           # a konnector developer's token
```

A template is an account type plus a `template` member: the provider's name, and the
parameters its `[name]` placeholders take (`label`: one DNS label such as a tenant; `host`:
a host name; `host_path`: a host and a path such as a Keycloak realm). Values are checked
so that a parameter cannot move an endpoint to another host. `scope` is the scope asked for
when `start` names none; `scope_delimiter` is how the provider separates scopes (the start
scope is space-separated and is re-joined with it).

Every file is parsed and validated by the tests (`catalogue::tests`, `tests/cli.rs`).

## Licence of the endpoints

`auth_endpoint`, `token_endpoint` and `scope_delimiter` come from Grant's provider list
(`config/oauth.json` of https://github.com/simov/grant), MIT licence, Copyright (c)
2014-present Simeon Velichkov; the full notice is in [`LICENSE-grant`](LICENSE-grant).
`token_mode`, `extras`, `pkce`, `revocation_endpoint` and `scope` are ours.

"""

PLACEHOLDER = re.compile(r"\[([a-z_]+)\]")


def delimiter(d):
    return "space" if d == " " else f"`{d}`"


def template(name, grant):
    display, token_mode, extras, pkce, revocation, scope = CURATED[name]
    doc = {
        "_id": name,
        "grant_mode": "authorization_code",
        "auth_endpoint": grant["authorize_url"],
        "token_endpoint": grant["access_url"],
        "token_mode": token_mode,
    }
    if revocation:
        doc["revocation_endpoint"] = revocation
    if extras:
        doc["extras"] = extras
    # Grant joins a scope list with "," unless the provider says otherwise.
    doc["scope_delimiter"] = grant.get("scope_delimiter", ",")
    if scope:
        doc["scope"] = scope
    doc["pkce"] = pkce
    meta = {"name": display, "source": "grant (MIT): authorize_url, access_url, scope_delimiter"}
    used = sorted(set(PLACEHOLDER.findall(json.dumps(doc))))
    declared = PARAMETERS.get(name, {})
    if sorted(declared) != used:
        sys.exit(f"{name}: placeholders {used} but parameters {sorted(declared)}")
    if declared:
        meta["parameters"] = {
            k: {"kind": kind, "description": text} for k, (kind, text) in declared.items()
        }
    doc["template"] = meta
    return doc


def main():
    with open(SOURCE) as f:
        grant = json.load(f)
    rows = []
    for name in sorted(CURATED):
        g = grant[name]
        if g.get("oauth") != 2:
            sys.exit(f"{name}: not OAuth 2 in Grant's list")
        doc = template(name, g)
        with open(os.path.join(OUT, f"{name}.json"), "w") as f:
            json.dump(doc, f, indent=2, ensure_ascii=False)
            f.write("\n")
        params = ", ".join(f"`{p}`" for p in doc["template"].get("parameters", {})) or ""
        rows.append(
            f"| `{name}` | {doc['template']['name']} | `{doc['token_mode']}` | "
            f"{'yes' if doc['pkce'] else 'no'} | {delimiter(doc['scope_delimiter'])} | "
            f"{', '.join(f'{k}={v}' for k, v in doc.get('extras', {}).items())} | {params} |"
        )
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write(README_HEAD.format(count=len(rows)))
        f.write("| template | provider | token_mode | PKCE | scope delimiter | extras | parameters |\n")
        f.write("|---|---|---|---|---|---|---|\n")
        f.write("\n".join(rows) + "\n")
    print(f"wrote {len(rows)} templates")


if __name__ == "__main__":
    main()
