//! Unit tests of the router: the most specific pattern wins, 404 and 405 are told
//! apart (with the allowed methods), and malformed patterns are refused.

use super::*;

#[derive(Debug)]
struct R(Pattern, Option<String>, Option<Vec<Method>>, &'static str);
impl Routable for R {
    fn pattern(&self) -> &Pattern {
        &self.0
    }
    fn host(&self) -> Option<&str> {
        self.1.as_deref()
    }
    fn methods(&self) -> Option<&[Method]> {
        self.2.as_deref()
    }
}

fn r(p: &str, host: Option<&str>, methods: &[&str], name: &'static str) -> R {
    let m = if methods.is_empty() {
        None
    } else {
        Some(
            methods
                .iter()
                .map(|m| Method::from_bytes(m.as_bytes()).expect("method"))
                .collect(),
        )
    };
    R(
        Pattern::parse(p).expect("pattern"),
        host.map(str::to_string),
        m,
        name,
    )
}

fn router() -> Router<R> {
    Router::new(vec![
        r("/**", None, &[], "catchall"),
        r("/items/**", None, &["POST", "PUT", "DELETE"], "items-write"),
        r("/items/{id}", None, &["GET"], "item"),
        r("/items/special", None, &["GET"], "special"),
        r("/items", None, &["GET"], "list"),
        r("/admin/**", Some("admin.local"), &[], "admin-host"),
        r("/only-get", None, &["GET"], "only-get"),
        r("/", None, &["GET"], "root"),
    ])
}

fn pick(method: &str, host: Option<&str>, path: &str) -> String {
    let rt = router();
    match rt.find(
        &Method::from_bytes(method.as_bytes()).expect("m"),
        host,
        path,
    ) {
        Matched::Route(r) => r.3.to_string(),
        Matched::MethodNotAllowed(a) => format!("405 {a:?}"),
        Matched::NotFound => "404".to_string(),
    }
}

#[test]
fn most_specific_wins() {
    assert_eq!(pick("GET", None, "/items/special"), "special");
    assert_eq!(pick("GET", None, "/items/42"), "item");
    assert_eq!(pick("HEAD", None, "/items/42"), "item");
    assert_eq!(pick("POST", None, "/items/42"), "items-write");
    assert_eq!(pick("GET", None, "/items"), "list");
    assert_eq!(pick("GET", None, "/items/"), "catchall");
    assert_eq!(pick("GET", None, "/"), "root");
    assert_eq!(pick("GET", Some("admin.local"), "/admin/x"), "admin-host");
    assert_eq!(pick("GET", Some("other"), "/admin/x"), "catchall");
    assert_eq!(pick("GET", None, "/admin/x"), "catchall");
}

#[test]
fn not_found_and_method_not_allowed() {
    let rt = Router::new(vec![
        r("/only-get", None, &["GET"], "g"),
        r("/items/{id}", None, &["GET", "PUT"], "i"),
    ]);
    assert!(matches!(
        rt.find(&Method::GET, None, "/nothing"),
        Matched::NotFound
    ));
    assert!(matches!(
        rt.find(&Method::GET, None, "/items/"),
        Matched::NotFound
    ));
    assert!(matches!(
        rt.find(&Method::GET, None, "/items/1/2"),
        Matched::NotFound
    ));
    match rt.find(&Method::DELETE, None, "/items/1") {
        Matched::MethodNotAllowed(a) => {
            assert_eq!(a, vec![Method::GET, Method::HEAD, Method::PUT])
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn patterns_are_validated() {
    assert!(Pattern::parse("items").is_err());
    assert!(Pattern::parse("/a/**/b").is_err());
    assert!(Pattern::parse("/a/{}").is_err());
    assert!(Pattern::parse("/a/x{id}").is_err());
    assert!(Pattern::parse("/a//b").is_err());
    assert!(Pattern::parse("/a/../b").is_err());
    assert!(Pattern::parse("/a;b").is_err());
    assert!(Pattern::parse("/%61dmin").is_err());
    assert!(Pattern::parse("/items/{id}").is_ok());
    assert!(Pattern::parse("/**").is_ok());
    assert!(Pattern::parse("/").is_ok());
    assert_eq!(
        Pattern::parse("/api/v1/{id}/**")
            .expect("p")
            .literal_prefix(),
        "/api/v1"
    );
}
