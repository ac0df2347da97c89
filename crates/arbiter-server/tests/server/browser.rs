//! End to end in real Chromium, driven over the W3C WebDriver protocol with plain HTTP.
//!
//! Needs Debian's `chromium` and `chromium-driver`; skipped with a printed reason when either is
//! missing, unless `ARBITER_REQUIRE_BROWSER=1`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::crash::start_server;
use crate::helpers::*;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    child: Child,
    http: reqwest::Client,
    base: String,
    session: String,
    _profile: std::path::PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let http = crate::helpers::http_client_builder()
            .build()
            .expect("http client");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(res) = http.get(format!("{base}/status")).send().await
                && let Ok(v) = res.json::<Value>().await
                && v["value"]["ready"] == true
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = std::env::temp_dir().join(unique("arbiter-chromium"));
        std::fs::create_dir_all(&profile).unwrap();
        // Flags from the machine notes: headless, no sandbox as root, and no background
        // networking (the closed network refuses it).
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
        ];
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.push(format!("--user-data-dir={}", profile.display()));
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": all }
        } } });
        let res = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session");
        let v: Value = res.json().await.expect("session json");
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        Driver {
            child,
            http,
            base,
            session,
            _profile: profile,
        }
    }

    async fn try_cmd(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Value> {
        let url = format!("{}/session/{}{}", self.base, self.session, path);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req
            .send()
            .await
            .expect("webdriver")
            .json()
            .await
            .expect("webdriver json");
        if v["value"].get("error").is_some() {
            return Err(v["value"].clone());
        }
        Ok(v["value"].clone())
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        match self.try_cmd(method, path, body).await {
            Ok(v) => v,
            Err(e) => panic!("webdriver {path}: {e}"),
        }
    }

    /// Runs a command on the element matching `css`, finding it again when the page replaced it
    /// between the lookup and the command (a "stale element reference" did nothing, so retrying
    /// is safe).
    async fn element_cmd(
        &self,
        css: &str,
        method: reqwest::Method,
        suffix: &str,
        body: Option<Value>,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let id = self.find(css).await;
            let path = format!("/element/{id}{suffix}");
            match self.try_cmd(method.clone(), &path, body.clone()).await {
                Ok(v) => return v,
                Err(e) if e["error"] == "stale element reference" && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("webdriver {path} ({css}): {e}"),
            }
        }
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let url = format!("{}/session/{}/element", self.base, self.session);
            let v: Value = self
                .http
                .post(url)
                .json(&json!({ "using": "css selector", "value": css }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if let Some(id) = v["value"][ELEMENT].as_str() {
                return id.to_string();
            }
            if Instant::now() > deadline {
                let src = self.cmd(reqwest::Method::GET, "/source", None).await;
                panic!(
                    "no element {css:?} ({v}) on page: {}",
                    src.as_str().unwrap_or("")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn click(&self, css: &str) {
        self.element_cmd(css, reqwest::Method::POST, "/click", Some(json!({})))
            .await;
    }

    async fn text(&self, css: &str) -> String {
        self.element_cmd(css, reqwest::Method::GET, "/text", None)
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    async fn attr(&self, css: &str, name: &str) -> String {
        self.element_cmd(
            css,
            reqwest::Method::GET,
            &format!("/attribute/{name}"),
            None,
        )
        .await
        .as_str()
        .unwrap_or("")
        .to_string()
    }

    async fn selected(&self, css: &str) -> bool {
        self.element_cmd(css, reqwest::Method::GET, "/selected", None)
            .await
            == true
    }

    async fn type_into(&self, css: &str, text: &str) {
        self.element_cmd(
            css,
            reqwest::Method::POST,
            "/value",
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn clear(&self, css: &str) {
        self.element_cmd(css, reqwest::Method::POST, "/clear", Some(json!({})))
            .await;
    }

    /// Presses a key on the page, as a person would.
    async fn key(&self, key: &str) {
        let actions = json!({ "actions": [{ "type": "key", "id": "keyboard", "actions": [
            { "type": "keyDown", "value": key }, { "type": "keyUp", "value": key }
        ] }] });
        self.cmd(reqwest::Method::POST, "/actions", Some(actions))
            .await;
    }

    async fn title(&self) -> String {
        self.cmd(reqwest::Method::GET, "/title", None)
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    async fn wait_title(&self, starts: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.title().await.starts_with(starts) {
            assert!(
                Instant::now() < deadline,
                "page title {:?} never became {starts:?}",
                self.title().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks `css`, which submits a form, and waits for the page it loads to be titled
    /// `starts`. The title alone cannot tell that page from the one before when both have the
    /// same name (one item after another), so first the old page's root must be gone.
    async fn click_to_page(&self, css: &str, starts: &str) {
        let old_root = self.find("html").await;
        self.click(css).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let probe = self
                .try_cmd(
                    reqwest::Method::GET,
                    &format!("/element/{old_root}/name"),
                    None,
                )
                .await;
            match probe {
                Err(e) if e["error"] == "stale element reference" => break,
                _ => {
                    assert!(Instant::now() < deadline, "{css} never left the page");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        self.wait_title(starts).await;
    }

    /// Fails when the current page scrolls sideways, spills past the window or clips text
    /// (the report pages' check, `arbiter_testkit::pages`).
    async fn assert_layout(&self, page: &str) {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/execute/sync",
                Some(json!({ "script": format!("return {};", arbiter_testkit::pages::LAYOUT_JS), "args": [] })),
            )
            .await;
        let problems = v["problems"].as_array().expect("layout problems");
        assert!(problems.is_empty(), "{page} at 1,280 px: {problems:?}");
    }

    async fn fetch_text(&self, url: &str) -> String {
        let v = self
            .cmd(reqwest::Method::POST, "/execute/async", Some(json!({
                "script": "const done = arguments[arguments.length - 1]; fetch(arguments[0], {credentials: 'same-origin'}).then(r => r.text()).then(done, e => done('ERROR ' + e));",
                "args": [url]
            })))
            .await;
        v.as_str().unwrap_or("").to_string()
    }
}

fn browser_available() -> bool {
    let ok = std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists();
    if !ok {
        if std::env::var("ARBITER_REQUIRE_BROWSER").as_deref() == Ok("1") {
            panic!(
                "ARBITER_REQUIRE_BROWSER=1 but {CHROMIUM} or {CHROMEDRIVER} is missing (apt-get install -y chromium chromium-driver)"
            );
        }
        eprintln!(
            "note: browser test skipped: {CHROMIUM} or {CHROMEDRIVER} is missing (apt-get install -y chromium chromium-driver)"
        );
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rater_and_admin_in_chromium() {
    if !browser_available() {
        return;
    }
    let db = databases().await.remove(0);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = start_server(&db, port).await;
    let app = &server.app;
    let items = "{\"id\":\"i1\",\"text\":\"I will hurt you\",\"warning\":\"violent threat\"}\n{\"id\":\"i2\",\"text\":\"have a nice day\"}\n{\"id\":\"i3\",\"text\":\"you people are vermin\",\"warning\":\"dehumanising language\"}\n{\"id\":\"i4\",\"text\":\"fourth\"}\n";
    let p = app
        .project(
            spec(json!({ "session_cap": 3, "break_minutes": 30, "overlap_per_pool": 5 })),
            items,
        )
        .await;
    // Two API raters give the dashboard something to agree about.
    let code = app.invite(p, Some("control"), 2).await;
    for label in ["toxic", "toxic"] {
        let r = app.ready_rater(&code, json!({})).await;
        for _ in 0..3 {
            r.label_next(json!(label)).await.expect("item");
        }
    }
    let code = app.invite(p, None, 1).await;

    let d = Driver::start().await;
    let base = app.url("");
    d.goto(&format!("{base}/join?code={code}")).await;
    assert_eq!(d.attr("#code", "value").await, code);
    d.click("#join").await;
    d.wait_title("Informed consent").await;
    d.assert_layout("consent").await;
    assert!(d.text("#consent-text").await.contains("slurs"));
    d.click("#agree").await;
    // The withdrawal code is shown once, right after consent.
    d.wait_title("Your withdrawal code").await;
    let withdrawal_code = d.text("#withdrawal-code").await;
    assert!(withdrawal_code.starts_with('W'), "{withdrawal_code}");
    d.click("#continue").await;
    d.wait_title("About you").await;
    d.assert_layout("questionnaire").await;
    // The first question's "prefer not to say" is offered; choose the identity answer instead.
    assert!(d.text("fieldset").await.contains("prefer not to say"));
    d.click("#q0o0").await;
    d.click("#submit-answers").await;
    d.wait_title("Label this item").await;

    // Item 1 is flagged: blurred until the rater clicks.
    assert!(d.attr("#item-text", "class").await.contains("blurred"));
    d.click("#reveal").await;
    assert!(
        !d.attr("#item-text", "class").await.contains("blurred"),
        "reveal removes the blur"
    );
    assert_eq!(d.text("#item-text").await, "I will hurt you");
    d.assert_layout("annotate").await;
    d.key("1").await;
    assert!(d.selected("#label0").await, "key 1 picks the first label");
    d.click_to_page("#submit-label", "Label this item").await;
    assert_eq!(d.text("#item-text").await, "have a nice day");
    assert!(!d.attr("#item-text", "class").await.contains("blurred"));
    d.key("2").await;
    assert!(d.selected("#label1").await);
    d.click_to_page("#submit-label", "Label this item").await;
    // Item 3 is blurred too; the rater reveals it with the keyboard, then skips it with "s".
    assert!(d.attr("#item-text", "class").await.contains("blurred"));
    d.key("v").await;
    assert!(!d.attr("#item-text", "class").await.contains("blurred"));
    d.key("s").await;
    // Three items done: the session cap sends the rater on a break.
    d.wait_title("Time for a break").await;
    d.assert_layout("break").await;
    assert!(d.text("#break-screen").await.contains("limit of 3 items"));
    d.goto(&format!("{base}/ledger")).await;
    d.assert_layout("ledger").await;
    assert!(
        d.text("#effective").await.contains("/hour")
            || d.text("#effective").await.contains("not yet")
    );

    // Admin signs in, sees progress and agreement, downloads the datasheet.
    d.goto(&format!("{base}/admin/login")).await;
    d.type_into("#token", ADMIN_TOKEN).await;
    d.click("#sign-in").await;
    d.wait_title("Projects").await;
    d.goto(&format!("{base}/admin/projects/{p}")).await;
    d.wait_title("Dashboard").await;
    d.assert_layout("dashboard").await;
    let progress = d.text("#progress-table").await;
    // Three raters in all, under k: no pool is named or sized on the dashboard.
    assert!(
        progress.contains("withheld")
            && !progress.contains("lgbtq")
            && !progress.contains("control"),
        "{progress}"
    );
    let alpha = d.text("#alpha-pooled").await;
    assert!(
        alpha.contains("Krippendorff") && !alpha.contains("undefined"),
        "{alpha}"
    );
    let href = d.attr("#datasheet-md", "href").await;
    let sheet = d.fetch_text(&href).await;
    assert!(
        sheet.starts_with("# Datasheet (CrowdWorkSheets)"),
        "{sheet}"
    );
    assert!(sheet.contains("**21. A withdrawal path"), "{sheet}");
    let html = d.fetch_text(&d.attr("#datasheet-html", "href").await).await;
    assert!(html.contains("<dt>4. Risks to annotators"), "{html}");

    // Admin actions through the page's forms: import an item, then hand out an invitation.
    d.type_into(
        "#items-body",
        "{\"id\":\"i5\",\"text\":\"added in the browser\"}",
    )
    .await;
    d.click("#import").await;
    let notice = d.text("#notice").await;
    assert!(notice.contains("Imported 1 items"), "{notice}");
    d.clear("#max-uses").await;
    d.type_into("#max-uses", "3").await;
    d.click("#invite").await;
    let code = d.text("#invitation-code").await;
    assert!(
        d.text("#invitation")
            .await
            .contains("(3 use(s), valid 14 days)"),
        "{}",
        d.text("#invitation").await
    );
    let joined = app.ready_rater(&code, json!({})).await;
    let (_, next) = joined.get("/api/next").await;
    assert_eq!(
        next["status"], "item",
        "the invitation from the page works: {next}"
    );

    // The browser's labels were stored with the blurred item revealed and answered.
    let text = text_of(app, &format!("/api/projects/{p}/export?format=jsonl")).await;
    assert_eq!(
        text.lines().count(),
        8,
        "6 API labels + 2 browser labels (the skip is not a label): {text}"
    );

    // Every session has expired (the clock is moved in storage); the rater withdraws with the
    // code alone, and learns the reference under which their pay stays owed.
    sql(&app.db_url, "UPDATE sessions SET expires_at = 0").await;
    d.goto(&format!("{base}/annotate")).await;
    d.wait_title("Something went wrong").await;
    d.goto(&format!("{base}/withdraw")).await;
    d.wait_title("Withdraw").await;
    d.assert_layout("withdraw").await;
    d.type_into("#withdrawal-code-input", &withdrawal_code)
        .await;
    d.click("#withdraw-with-code").await;
    d.wait_title("Withdrawn").await;
    d.assert_layout("withdrawn").await;
    assert!(d.text("#owed-reference").await.starts_with("owed-"));
    let text = text_of(app, &format!("/api/projects/{p}/export?format=jsonl")).await;
    assert_eq!(
        text.lines().count(),
        6,
        "the browser rater's labels are erased: {text}"
    );
    let _ = d.cmd(reqwest::Method::DELETE, "", None).await;
    server.child.kill().ok();
    let _ = server.child.wait();
}
