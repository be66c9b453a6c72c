//! An OpenID identity provider played for `id_token` logins: two RSA test keys (made
//! with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`, then `openssl rsa
//! -traditional`; test vectors, no
//! secret), the key set a context's `id_token_jwk_url` serves, and tokens signed as an
//! identity provider signs them.

use serde_json::{json, Value};

/// The identity provider's signing key.
pub const IDP_KEY: &str = "-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEAsAkuk2m+k0Sstol7A53Oe+LIIQoIRunSmutm1RtFsn5z15bG
vYMaS6+9ED/6O5j1Fr9red0XFQ/8FIfIy2xsvkLOzSPUT5CWZJGN1XojeUYmmeQe
yvtw5JSmCQoi5azHI6c6tkqLQfLg/QoygBk4fKTInsiFawikNFP0+C5LI3mx5LMJ
Tm89jA9B7vV9ihn7LHooDyQDi5/lEgMVACkkJnPKiBhwwiWLxa4cb+bosMKQksgK
tddwyVWGWR8vl1OTbktS9ulHq31z02dkhLtZPQQQVlb4njb3AQ0gL6kc/YkzhjOV
juyPAo0GRsq+Ap+MxpD4wwN+Pgu+lws65K0zQQIDAQABAoIBAAX12aDeJLjBy4NG
tmaR8krZi+Mqfss/4YSjUdEHYl2/0FZNYZ9LEBnd8m3ZbLSV4j6J7q6qoLxy1Rsw
2cihfDEY+/2QKAElqSHwl7fRsd/KU0ZEphJDXzguHE0UDchvCDMZ13ASqBJskdef
f8Q8lmAKCEzwByxvl3e6HAJHNv4Vc18gX92+G7y40+0YeUSGLGI8vFD8+PmnowP0
AiKn2ss4Px0GZAGYhRbo1b9FYg+FGOxuqh9xU0MBJPTCj+j3HAFtOPmPtpsIt8r7
vH7hh7x5PVl8TWVYkDnn323N82JR+ef/ZVbBMHZoy+jal+vWBs4YHwmrHi4rqVNo
WLjMa5ECgYEA3rTqoiBF637AfRocQAlzN/RESw/LoWld0a1Ec0cekFthe1gOhg+S
2Bhc6drraGwAeCPAkX/0N+Ffd0moDMPudKNP5UUBUyIS4gJ2GtbMwRwY/qe5Kwdo
b8+AGrxwE6ZYN8vnhvTRDs2D1b0by9wDrQWSTSsyCaeVnK/T3xpGtl0CgYEAylom
48NzGaguRqDjHrMho61LX4J8CTqHriX7a4n4/ViB1MBroRhELE05lj8/4CZl+y9H
UqpbWo4omCC17xSTRUODvw3GP6uHFdSwR+CwzTJ09BB87+TMu0kTChodjqyFhXqx
4zTej9P7bJGzeJ6YzO9hhlqKSo+Ow4ZYdDtUGjUCgYAejZVu/px5DV+dChr8Eg/T
ilhgL9+Q2mK7pFiys/wWc+LwyAjeDX7o1JbSom0PW1nJIaaGj5ZSoEG3nMxITA0H
xWvtmUTwQclzZkELt5JJn/Ax55K4u4Bxbnc1s8pwd668oOW3lxijPkCq7xHEKv/6
GbyTh6yKtIoK//hCMFmpJQKBgEVc69HNUKot1VcOlWwTmWdi4uBleSEsuA/BI1L0
o64sZazJHNvG1q+c9S2Elt++Kd0VksxKazA6ZL3pEJRYqDbo8sNN9HQk1xRrqNWq
ttBQCHkVIc6Vznwwi18+Hn2ms8pSiaHJoLUKxDeuJiglrVkqgXKtnJP8a8KoTa/i
Gm01AoGBAI9kyVDS00rFbsEKZot26xvUOc0kEFUi4ICXUtAfGq6jf5Cr4xPYs/XQ
+U7vbgqAfzKsKwojUZEwXoJve6frwP5xqY6uj6rdK8gFvZrYzsIlTAnnwVXdns2G
HeAjEZeZ+/WAZBJAtmhaOpzHgmVtxRc3f9HGNRh2u8FXa3GW+NdA
-----END RSA PRIVATE KEY-----";

/// A key the identity provider does not publish.
pub const OTHER_KEY: &str = "-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEAkMq+ZkGIPwtjDwxOS/2Q0T4qrwMlu6iMIF4YwhMVluzfLwDh
UqzkpXLf5sDi6RTBSZU5OwTZPE5e828ehsCWlmZI7XPGcrKW9fFATEA8SR5PNi3t
hN8tqgShq2a3IRqGwxZUNsmnpdo1Vf3iYv4wzpv4gbnFuhIjWNtH0YDNED8We7Iu
5pr1Pvgf2iKMDptBpZlrNNs5GH1uwGRLpiQzwXqYpue6yWaCDRNfPg8j5xOSyrtZ
Rx/4RXeN4/pjVrgneyqWjBZeLK+dyeMk27gGZ0Z6DSa0maSj1sTapNek/KEteMG0
9eeDWTs57hCcpVK3knohKdQmatM7c0Amec+pqQIDAQABAoIBAA1NApvuzdmfbdR2
Y0Q/ISwyPhuLpM4OAqlVMN211m2MiZ1jbaTO9cYZEmZmi7Gw/Wc0CmjYiNgttDKV
SkRDXCdUHW5ADMKBPgrjxENSQfd5jaSYKCc6P+ihZPSTiqPDhbkAIRuoqfo7XFua
PKSusxnCYYa747pfFi4rHqLT5oKPwFinAAVxLPmaoA96aHpJWQH4PSxLBK8NHi+p
Iy7ce7fPct/6/0CXrgiRyt1fxoNB2//sZhprPYkUSwd3bTBUKmT6ff7nKrWBG+JT
Dnau7KtVr7KzZVks9mLO8j6Um6kzRGxORh2Y8vQ5sBIIiIFbYCMGnM3FUlEZguhd
XwZlQr0CgYEAxtSuRanVQqIYmEAY3mW9uS32/ie26tyMGXrVwAQvyLS5t9dBQfDt
pAunkAeL7EQDxO7pUGAWGXbHLim2XXHploi0a4M7Fo2sHiLVCqehYfwK7qZmz4l9
kZTcq3RaRIavX/mB+Zpb+A/MdSrvIW090xV0DGea1Td/N/Mdu3LffjsCgYEAumxu
zF/GLRKtexE8qi+OULFMe1g6gNyELodldgufkz/fZPeZPNXaUQS7KpncTpHEf/sS
XsqpUVXcflqkNaSRjt8eX9EPX0q2nZHshL9rGv02K87wpuKOIuS9dgm3J5oewDvn
9ihYXbH7iLfSjPvnMClV+Vuck0beFYkNZTYgRWsCgYEAhEYTFfcxD94kfI0Pvkxz
FhGVImmrT72fWogUUWS3oU9RyhLisAqnHZ4/QBs1I93voADMqJLzwMb7JSPM1Yel
vWZ+mJO6KHvhiD7l+eug+j2hzDhZZzHxnnso/ssuDi6H11J2/GWLT5C7FSuV4Gf7
XEUGagY2xCfic4dCPWTjd+cCgYBdu9eZ+y3xy8pebrRJ/c9Y00zZV+tSj44Gtx1U
1VNO/naclcH+zKgQxIg3S1VyS+i5UMxTzSKFOt66yWh3cF+frp/fHYbVKwPXBmAd
/wEjeN2b+VkXECLXeJuqlgf5aYy8q2JearrDoZIPlB3RtXbwyFfqIR4BD0jrGxYZ
JbXkMQKBgBK9JHIY1kJYs8591Ap3ST8MgF1STP9KmtLoZX3TYGVzmmCWQVtLwE6r
fKIPt9VXmK+lwYV8mHVExSenUZL9+odcUfuM10yQrAkmVAxkswcF7uQA1uAD5GQ+
O353c6C3Y/oH8LJDMz9DR2gTBF5XN6m7gVavIxBfUYAfAjga9FGI
-----END RSA PRIVATE KEY-----";

/// The modulus of [`IDP_KEY`], base64url.
pub const IDP_N: &str = "sAkuk2m-k0Sstol7A53Oe-LIIQoIRunSmutm1RtFsn5z15bGvYMaS6-9ED_6O5j1Fr9red0XFQ_8FIfIy2xsvkLOzSPUT5CWZJGN1XojeUYmmeQeyvtw5JSmCQoi5azHI6c6tkqLQfLg_QoygBk4fKTInsiFawikNFP0-C5LI3mx5LMJTm89jA9B7vV9ihn7LHooDyQDi5_lEgMVACkkJnPKiBhwwiWLxa4cb-bosMKQksgKtddwyVWGWR8vl1OTbktS9ulHq31z02dkhLtZPQQQVlb4njb3AQ0gL6kc_YkzhjOVjuyPAo0GRsq-Ap-MxpD4wwN-Pgu-lws65K0zQQ";

/// The key set of the identity provider: [`IDP_KEY`]'s public half (`kid` `idp-1`).
pub fn jwks() -> Value {
    json!({"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "idp-1", "n": IDP_N, "e": "AQAB"}]})
}

/// `claims` signed RS256 with `pem` (PKCS#1), naming key `idp-1`.
pub fn id_token(claims: &Value, pem: &str) -> String {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("idp-1".into());
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_rsa_der(&der),
    )
    .unwrap()
}
