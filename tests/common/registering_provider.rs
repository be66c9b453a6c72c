//! A provider played locally that implements RFC 7591 registration and RFC 7592
//! management as cozy-stack does (management URL = endpoint + `/{client_id}`, secret
//! rotation when the current secret is sent back), with checks at every step, plus the
//! authorization, token, user info and introspection endpoints of a registered client.

use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// One registered client as the provider knows it.
#[derive(Debug, Clone)]
pub struct Client {
    pub secret: String,
    pub access_token: String,
    pub metadata: Map<String, Value>,
    pub secret_expires_at: i64,
}

/// What the provider saw and holds.
#[derive(Debug, Default)]
pub struct State {
    pub clients: HashMap<String, Client>,
    pub registrations: u32,
    pub updates: u32,
    pub deletions: u32,
    pub counter: u32,
    /// `client_secret_expires_at` of the next registration (0: never).
    pub next_expiry: i64,
    /// Answer registrations with this status and body instead.
    pub refuse_registration: Option<(u16, Value)>,
    /// Bodies of refused requests, for failure messages.
    pub complaints: Vec<String>,
}

/// The played provider.
#[derive(Clone)]
pub struct RegisteringProvider {
    pub state: Arc<Mutex<State>>,
}

fn bad(status: u16, error: &str, state: &mut State, why: String) -> ResponseTemplate {
    state.complaints.push(why);
    ResponseTemplate::new(status).set_body_json(json!({ "error": error }))
}

fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn bearer(req: &Request) -> Option<String> {
    req.headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_owned)
}

impl RegisteringProvider {
    /// Mounts the provider on `server`, under `/auth`.
    pub async fn mount(server: &MockServer) -> RegisteringProvider {
        let p = RegisteringProvider {
            state: Arc::new(Mutex::new(State::default())),
        };
        Mock::given(wiremock::matchers::path_regex("^/auth/"))
            .respond_with(p.clone())
            .mount(server)
            .await;
        p
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    fn register(&self, req: &Request, s: &mut State) -> ResponseTemplate {
        if let Some((status, body)) = s.refuse_registration.clone() {
            return ResponseTemplate::new(status).set_body_json(body);
        }
        let Ok(Value::Object(meta)) = serde_json::from_slice::<Value>(&req.body) else {
            return bad(
                400,
                "invalid_client_metadata",
                s,
                "registration body is not a JSON object".into(),
            );
        };
        let redirect_ok = meta
            .get("redirect_uris")
            .and_then(Value::as_array)
            .is_some_and(|a| {
                !a.is_empty()
                    && a.iter()
                        .all(|u| u.as_str().is_some_and(|u| u.starts_with("https://")))
            });
        for required in ["client_name", "software_id"] {
            if !meta.get(required).is_some_and(Value::is_string) {
                return bad(400, "invalid_client_metadata", s, format!("no {required}"));
            }
        }
        if !redirect_ok {
            return bad(
                400,
                "invalid_redirect_uri",
                s,
                format!("redirect_uris {:?}", meta.get("redirect_uris")),
            );
        }
        s.registrations += 1;
        s.counter += 1;
        let id = format!("client-{}", s.counter);
        let client = Client {
            secret: format!("secret-{}-a", s.counter),
            access_token: format!("rat-{}", s.counter),
            metadata: meta.clone(),
            secret_expires_at: s.next_expiry,
        };
        s.clients.insert(id.clone(), client.clone());
        ResponseTemplate::new(201).set_body_json(Self::view(&id, &client, true))
    }

    fn view(id: &str, c: &Client, with_token: bool) -> Value {
        let mut v = Value::Object(c.metadata.clone());
        v["client_id"] = id.into();
        v["client_secret"] = c.secret.clone().into();
        v["client_secret_expires_at"] = c.secret_expires_at.into();
        v["client_kind"] = v.get("client_kind").cloned().unwrap_or("web".into());
        if with_token {
            v["registration_access_token"] = c.access_token.clone().into();
        }
        v
    }

    fn manage(&self, req: &Request, id: &str, s: &mut State) -> ResponseTemplate {
        let Some(client) = s.clients.get(id).cloned() else {
            return bad(404, "invalid_client", s, format!("no client {id}"));
        };
        if bearer(req).as_deref() != Some(client.access_token.as_str()) {
            return bad(
                401,
                "invalid_token",
                s,
                format!("bad registration access token for {id}"),
            );
        }
        match req.method.as_str() {
            "GET" => ResponseTemplate::new(200).set_body_json(Self::view(id, &client, false)),
            "DELETE" => {
                s.deletions += 1;
                s.clients.remove(id);
                ResponseTemplate::new(204)
            }
            "PUT" => {
                let Ok(Value::Object(mut meta)) = serde_json::from_slice::<Value>(&req.body) else {
                    return bad(
                        400,
                        "invalid_client_metadata",
                        s,
                        "update body is not JSON".into(),
                    );
                };
                if meta.get("client_id").and_then(Value::as_str) != Some(id) {
                    return bad(
                        400,
                        "invalid_client_id",
                        s,
                        "update without its client_id".into(),
                    );
                }
                let mut updated = client.clone();
                if let Some(sent) = meta.remove("client_secret") {
                    if sent.as_str() != Some(client.secret.as_str()) {
                        return bad(
                            400,
                            "invalid_client_secret",
                            s,
                            "rotation with a wrong secret".into(),
                        );
                    }
                    updated.secret = format!("{}-rotated", client.secret);
                }
                meta.remove("client_id");
                updated.metadata = meta;
                s.updates += 1;
                s.clients.insert(id.to_owned(), updated.clone());
                ResponseTemplate::new(200).set_body_json(Self::view(id, &updated, false))
            }
            m => bad(405, "invalid_request", s, format!("{m} on a client")),
        }
    }

    /// The client a token-endpoint request authenticates as (form or basic).
    fn authenticated(req: &Request, f: &HashMap<String, String>, s: &State) -> Option<String> {
        let (id, secret) = match (f.get("client_id"), f.get("client_secret")) {
            (Some(i), Some(sec)) => (i.clone(), sec.clone()),
            _ => {
                use base64::Engine;
                let raw = req
                    .headers
                    .get("authorization")?
                    .to_str()
                    .ok()?
                    .strip_prefix("Basic ")?
                    .to_owned();
                let pair =
                    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(raw).ok()?)
                        .ok()?;
                let (i, sec) = pair.split_once(':')?;
                (i.to_owned(), sec.to_owned())
            }
        };
        let c = s.clients.get(&id)?;
        let now = chrono::Utc::now().timestamp();
        (c.secret == secret && (c.secret_expires_at == 0 || c.secret_expires_at > now))
            .then_some(id)
    }
}

impl Respond for RegisteringProvider {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut guard = self.state.lock().unwrap();
        let s = &mut *guard;
        let path = req.url.path().to_owned();
        match (req.method.as_str(), path.as_str()) {
            ("POST", "/auth/register") => self.register(req, s),
            (_, p) if p.starts_with("/auth/register/") => {
                let id = p.trim_start_matches("/auth/register/").to_owned();
                self.manage(req, &id, s)
            }
            ("POST", "/auth/access_token") => {
                let f = form(&req.body);
                let Some(id) = Self::authenticated(req, &f, s) else {
                    return bad(
                        400,
                        "invalid_client",
                        s,
                        format!(
                            "token request from an unknown or expired client: {:?}",
                            f.get("client_id")
                        ),
                    );
                };
                let ok = match f.get("grant_type").map(String::as_str) {
                    Some("authorization_code") => {
                        f.get("code").map(String::as_str) == Some("the-code")
                    }
                    Some("refresh_token") => {
                        f.get("refresh_token").map(String::as_str) == Some("the-refresh-token")
                    }
                    _ => false,
                };
                if !ok {
                    return bad(400, "invalid_grant", s, "bad code or refresh token".into());
                }
                ResponseTemplate::new(200).set_body_json(json!({
                    "access_token": format!("access-for-{id}"),
                    "refresh_token": "the-refresh-token",
                    "token_type": "bearer",
                    "expires_in": 3600,
                    "scope": "io.cozy.files"
                }))
            }
            ("GET", "/auth/userinfo") => match bearer(req) {
                Some(t) if t.starts_with("access-for-") => ResponseTemplate::new(200)
                    .set_body_json(
                        json!({"sub": "u-1", "email": "alice@example.org", "name": "Alice Martin"}),
                    ),
                _ => bad(401, "invalid_token", s, "user info without a token".into()),
            },
            ("POST", "/auth/introspect") => {
                let f = form(&req.body);
                if Self::authenticated(req, &f, s).is_none() {
                    return bad(
                        401,
                        "invalid_client",
                        s,
                        "introspection by an unknown client".into(),
                    );
                }
                let active = f.get("token").is_some_and(|t| t.starts_with("access-for-"));
                ResponseTemplate::new(200).set_body_json(if active {
                    json!({"active": true, "exp": 2000000000, "scope": "io.cozy.files", "client_id": "x"})
                } else {
                    json!({"active": false})
                })
            }
            (m, p) => bad(404, "not_found", s, format!("{m} {p}")),
        }
    }
}
