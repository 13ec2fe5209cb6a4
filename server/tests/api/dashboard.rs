//! The dashboard: every file of server/dashboard/ served from the binary, with its type.

use std::path::{Path, PathBuf};

use reqwest::Method;

use crate::harness::TestServer;

fn files(dir: &Path, root: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            files(&path, root, out);
        } else {
            let relative = path.strip_prefix(root).unwrap();
            out.push(relative.to_string_lossy().replace('\\', "/"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_file_is_served_with_its_type() {
    let server = TestServer::start().await;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dashboard");
    let index = std::fs::read(root.join("index.html")).unwrap();

    for path in ["/", "/dashboard", "/dashboard/", "/dashboard/index.html"] {
        let response = server.client.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let headers = response.headers().clone();
        assert_eq!(
            headers["content-type"], "text/html; charset=utf-8",
            "{path}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(
            response.bytes().await.unwrap().as_ref(),
            index.as_slice(),
            "{path}"
        );
    }

    let mut names = Vec::new();
    files(&root, &root, &mut names);
    assert!(!names.is_empty());
    for name in names {
        let response = server
            .client
            .get(server.url(&format!("/dashboard/{name}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{name}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let expected = match name.rsplit_once('.').map(|(_, ext)| ext) {
            Some("html") => "text/html; charset=utf-8",
            Some("js") | Some("mjs") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            Some("png") => "image/png",
            Some("json") => "application/json",
            _ => content_type.as_str(),
        };
        assert_eq!(content_type, expected, "{name}");
        let body = response.bytes().await.unwrap();
        assert_eq!(
            body.as_ref(),
            std::fs::read(root.join(&name)).unwrap().as_slice(),
            "{name}"
        );
    }

    let missing = server
        .send(Method::GET, "/dashboard/missing.js", None, None)
        .await;
    missing.expect_error(404, "not_found");
    let head = server.send(Method::HEAD, "/", None, None).await;
    assert_eq!(head.status, 200);
    server.stop().await;
}
