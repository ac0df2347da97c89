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
        // The browser lives far from UTC, so pages must give its local time beside UTC.
        let child = Command::new(CHROMEDRIVER)
            .env("TZ", "Pacific/Auckland")
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
    /// is safe). Chromedriver also reports a node detached mid-command as an "unknown error"
    /// from its inspector ("Node with given id does not belong to the document", "No node with
    /// given id found"): the same staleness, caught by CI, and retried the same way.
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
                Err(e) if is_stale(&e) && Instant::now() < deadline => {
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
    /// (the report pages' check, `arbiter_testkit::pages`), on a phone (390 px) and on a
    /// laptop (1,280 px). With `ARBITER_SCREENSHOTS=DIR` each width is saved as a PNG.
    async fn assert_layout(&self, page: &str) {
        for width in [390, 1280] {
            self.cmd(
                reqwest::Method::POST,
                "/window/rect",
                Some(json!({ "width": width, "height": 900 })),
            )
            .await;
            let v = self
                .cmd(
                    reqwest::Method::POST,
                    "/execute/sync",
                    Some(json!({ "script": format!("return {};", arbiter_testkit::pages::LAYOUT_JS), "args": [] })),
                )
                .await;
            let problems = v["problems"].as_array().expect("layout problems");
            assert!(problems.is_empty(), "{page} at {width} px: {problems:?}");
            if let Ok(dir) = std::env::var("ARBITER_SCREENSHOTS") {
                let png = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
                let bytes = base64_decode(png.as_str().unwrap_or(""));
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(format!("{dir}/server-{page}-{width}.png"), bytes).unwrap();
            }
        }
    }

    /// The inner HTML of the element matching `css`.
    async fn html(&self, css: &str) -> String {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/execute/sync",
                Some(json!({ "script": "const e = document.querySelector(arguments[0]); return e ? e.innerHTML : null;", "args": [css] })),
            )
            .await;
        v.as_str()
            .unwrap_or_else(|| panic!("no element {css}"))
            .to_string()
    }

    /// Whether an element matching `css` is on the page now (no waiting).
    async fn exists(&self, css: &str) -> bool {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/execute/sync",
                Some(json!({ "script": "return document.querySelector(arguments[0]) !== null;", "args": [css] })),
            )
            .await;
        v == true
    }

    async fn source(&self) -> String {
        self.cmd(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
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

/// Standard base64 (WebDriver's screenshots), without a dependency for one test.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = text.bytes().filter(|c| !b"=\r\n".contains(c)).collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= u32::from(value(*c)) << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// The moment a page's `<time datetime>` names, in milliseconds since the epoch (UTC).
fn datetime_ms(iso: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| iso[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from civil (the inverse of the server's conversion, written out independently).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + n(11..13)) * 60 + n(14..16)) * 60_000 + n(17..19) * 1000
}

/// Now, in milliseconds since the epoch.
fn db_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A moment's UTC day as the pages write it (`6 Dec 2026`), and its year.
fn utc_date(ms: i64) -> (String, i64) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // Search the day whose midnight datetime_ms gives, walking from the epoch year.
    let day_start = ms - ms.rem_euclid(86_400_000);
    for y in 1970..2200 {
        for (mi, m) in MONTHS.iter().enumerate() {
            for d in 1..=31 {
                let iso = format!("{y:04}-{:02}-{d:02}T00:00:00Z", mi + 1);
                if datetime_ms(&iso) == day_start {
                    return (format!("{d} {m} {y}"), y);
                }
            }
        }
    }
    panic!("no day for {ms}")
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
    // i1 warned (hidden by default), i2 plain, i3 warned but not hidden, i4 hidden without a
    // warning, i5 plain.
    let items = "{\"id\":\"i1\",\"text\":\"I will hurt you\",\"warning\":\"violent threat\"}\n{\"id\":\"i2\",\"text\":\"have a nice day\"}\n{\"id\":\"i3\",\"text\":\"you people are vermin\",\"warning\":\"dehumanising language\",\"blur\":false}\n{\"id\":\"i4\",\"text\":\"fourth\",\"blur\":true}\n{\"id\":\"i5\",\"text\":\"fifth\"}\n";
    let instructions = "Label each comment.\nRead it twice before you answer.\n\n- **toxic**: insults or threats\n- <b>not toxic</b>: anything else";
    let p = app
        .project(
            spec(json!({
                "session_cap": 4, "daily_cap": 5, "break_minutes": 30, "overlap_per_pool": 5,
                "pay_per_item": 0.15, "instructions": instructions,
                "contact": "research-team@example.org", "pay_standard_source": "living wage 2026"
            })),
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
    d.assert_layout("join").await;
    assert_eq!(d.attr("#code", "value").await, code);
    d.click("#join").await;
    d.wait_title("Informed consent").await;
    d.assert_layout("consent").await;
    assert!(d.text("#consent-text").await.contains("slurs"));
    let pay = d.text("#consent-pay").await;
    assert!(
        pay.contains("0.15 USD per item") && pay.contains("15.00 USD an hour (living wage 2026)"),
        "{pay}"
    );
    assert_eq!(
        d.attr("#consent-contact a", "href").await,
        "mailto:research-team@example.org"
    );
    d.click("#agree").await;
    // The withdrawal code is shown once, right after consent.
    d.wait_title("Your withdrawal code").await;
    let withdrawal_code = d.text("#withdrawal-code").await;
    assert!(withdrawal_code.starts_with('W'), "{withdrawal_code}");
    d.click("#continue").await;
    d.wait_title("About you").await;
    d.assert_layout("questionnaire").await;
    let use_of_answers = d.text("#answers-use").await;
    assert!(
        use_of_answers.contains("choose the pool")
            && use_of_answers.contains("never shown individually"),
        "{use_of_answers}"
    );
    // The first question's "prefer not to say" is offered; choose the identity answer instead.
    assert!(d.text("fieldset").await.contains("prefer not to say"));
    d.click("#q0o0").await;
    d.click("#submit-answers").await;
    d.wait_title("Label this item").await;

    // Instructions keep their line breaks and lists; the HTML in them is shown as text.
    let shown = d.html("#instructions").await;
    assert!(
        shown.contains("Label each comment.<br>") && shown.contains("<li><strong>toxic</strong>"),
        "{shown}"
    );
    assert!(shown.contains("&lt;b&gt;not toxic&lt;/b&gt;"), "{shown}");
    assert!(
        d.text("#progress")
            .await
            .contains("0 of 4 before your break · 5 left today · 0.00 USD earned")
    );

    // Item 1 is warned and hidden: its text is not in the page (a screen reader would read it),
    // and it cannot be labelled until shown.
    assert!(d.text("#item-warning").await.contains("violent threat"));
    assert!(d.exists("#item-hidden").await && !d.exists("#item-text").await);
    assert!(!d.source().await.contains("I will hurt you"));
    assert_eq!(d.attr("#submit-label", "disabled").await, "true");
    d.assert_layout("annotate-hidden").await;
    // "v" shows it; it can be hidden again and shown again.
    d.key("v").await;
    d.wait_title("Label this item").await;
    assert_eq!(d.text("#item-text").await, "I will hurt you");
    d.click_to_page("#hide", "Label this item").await;
    assert!(d.exists("#item-hidden").await && !d.source().await.contains("I will hurt you"));
    d.click_to_page("#reveal", "Label this item").await;
    assert_eq!(d.text("#item-text").await, "I will hurt you");
    d.assert_layout("annotate").await;
    d.key("1").await;
    assert!(d.selected("#label0").await, "key 1 picks the first label");
    d.click_to_page("#submit-label", "Label this item").await;
    assert!(d.text("#saved").await.starts_with("Saved."));
    assert!(
        d.text("#progress")
            .await
            .contains("1 of 4 before your break · 4 left today · 0.15 USD earned")
    );

    // Item 2 is plain. Labelled, then taken back with "u": it comes again, and is labelled anew.
    assert_eq!(d.text("#item-text").await, "have a nice day");
    assert!(!d.exists("#item-warning").await && !d.exists("#reveal").await);
    d.key("1").await;
    d.click_to_page("#submit-label", "Label this item").await;
    assert!(d.exists("#undo").await, "a fresh label can be taken back");
    d.key("u").await;
    d.wait_title("Label this item").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.text("#saved").await.contains("taken back") {
        assert!(Instant::now() < deadline, "undo did not answer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(d.text("#item-text").await, "have a nice day");
    assert!(
        d.text("#progress")
            .await
            .contains("1 of 4 before your break")
    );
    d.key("2").await;
    assert!(d.selected("#label1").await);
    d.click_to_page("#submit-label", "Label this item").await;

    // Item 3 is warned but not hidden: the warning shows and so does the text. Skipped with "s".
    assert!(
        d.text("#item-warning")
            .await
            .contains("dehumanising language")
    );
    assert_eq!(d.text("#item-text").await, "you people are vermin");
    assert!(!d.exists("#reveal").await);
    d.key("s").await;
    d.wait_title("Label this item").await;
    // Item 4 is hidden with no warning; shown with a click, then labelled.
    d.find("#item-hidden").await;
    assert!(!d.exists("#item-warning").await);
    d.click_to_page("#reveal", "Label this item").await;
    assert_eq!(d.text("#item-text").await, "fourth");
    d.key("1").await;
    d.click_to_page("#submit-label", "Time for a break").await;

    // Four items done: the session cap sends the rater on a break, until a stated date-time.
    d.assert_layout("break").await;
    assert!(d.text("#break-screen").await.contains("limit of 4 items"));
    let resume = datetime_ms(&d.attr("#resume-at time", "datetime").await);
    let now = db_now();
    assert!(
        resume > now && resume <= now + 31 * 60_000,
        "{resume} vs {now}"
    );

    // The break is over (the answers are moved 40 minutes back in storage); the fifth answer
    // reaches the daily cap. It resumes 24 hours after the first answer, at a clock time
    // earlier than now: the screen must say the date, not only the time.
    sql(&app.db_url, "UPDATE annotations SET submitted_at = submitted_at - 2400000, served_at = served_at - 2400000").await;
    d.goto(&format!("{base}/annotate")).await;
    d.wait_title("Label this item").await;
    assert_eq!(d.text("#item-text").await, "fifth");
    d.key("2").await;
    d.click_to_page("#submit-label", "That's enough for today")
        .await;
    d.assert_layout("daily-limit").await;
    let resume = datetime_ms(&d.attr("#resume-at time", "datetime").await);
    let now = db_now();
    assert!(
        resume > now + 23 * 3_600_000 && resume < now + 24 * 3_600_000,
        "resumes in 23 to 24 hours: {resume} vs {now}"
    );
    let said = d.text("#resume-at").await;
    let (date, _) = utc_date(resume);
    assert!(
        said.contains(&date) && said.contains("UTC") && said.contains("(in about 23 h"),
        "{said} ({date})"
    );
    // Auckland is 13 hours ahead in December: the local time is given too, with its zone.
    assert!(
        said.contains("your time") && said.contains("GMT+13"),
        "{said}"
    );
    d.goto(&format!("{base}/ledger")).await;
    d.assert_layout("ledger").await;

    // Admin signs in, sees progress and agreement, downloads the datasheet.
    d.goto(&format!("{base}/admin/login")).await;
    d.assert_layout("admin-login").await;
    d.type_into("#token", ADMIN_TOKEN).await;
    d.click("#sign-in").await;
    d.wait_title("Projects").await;
    d.assert_layout("admin-home").await;
    d.goto(&format!("{base}/admin/projects/{p}")).await;
    d.wait_title("Dashboard").await;
    d.assert_layout("dashboard").await;
    // The admin reads the instructions as the raters do.
    let shown = d.html("#instructions").await;
    assert!(
        shown.contains("Label each comment.<br>") && shown.contains("&lt;b&gt;not toxic&lt;/b&gt;"),
        "{shown}"
    );
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
    let html_href = d.attr("#datasheet-html", "href").await;
    let html = d.fetch_text(&html_href).await;
    assert!(html.contains("<dt>4. Risks to annotators"), "{html}");
    // The HTML datasheet (a download) reads on a phone and shows the instructions as raters
    // read them: written into the page in place of the dashboard.
    d.cmd(
        reqwest::Method::POST,
        "/execute/sync",
        Some(json!({ "script": "document.open(); document.write(arguments[0]); document.close();", "args": [html] })),
    )
    .await;
    d.wait_title("Datasheet").await;
    d.assert_layout("datasheet").await;
    let shown = d.html("#instructions .instructions").await;
    assert!(
        shown.contains("Label each comment.<br>") && shown.contains("&lt;b&gt;not toxic&lt;/b&gt;"),
        "{shown}"
    );
    d.goto(&format!("{base}/admin/projects/{p}")).await;
    d.wait_title("Dashboard").await;

    // Admin actions through the page's forms: import an item, then hand out an invitation. A
    // refused import (the id exists) keeps what was pasted, to be corrected.
    let pasted = "{\"id\":\"i5\",\"text\":\"added in the browser\"}";
    d.type_into("#items-body", pasted).await;
    d.click("#import").await;
    assert!(
        d.text("#import-errors")
            .await
            .contains("\"i5\" already exists")
    );
    d.assert_layout("dashboard-import-error").await;
    assert_eq!(
        d.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": "return document.getElementById('items-body').value;", "args": [] }))
        )
        .await,
        pasted
    );
    d.clear("#items-body").await;
    d.type_into(
        "#items-body",
        "{\"id\":\"i6\",\"text\":\"added in the browser\"}",
    )
    .await;
    d.click("#import").await;
    let notice = d.text("#notice").await;
    assert!(notice.contains("Imported 1 items"), "{notice}");
    d.clear("#max-uses").await;
    d.type_into("#max-uses", "3").await;
    d.click("#invite").await;
    let code = d.text("#invitation-code").await;
    let link = d.attr("#invitation-link", "href").await;
    assert_eq!(
        link,
        format!("{base}/join?code={code}"),
        "the link is absolute"
    );
    d.assert_layout("invitation").await;
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

    // The browser's labels were stored, hidden items shown and answered.
    let text = text_of(app, &format!("/api/projects/{p}/export?format=jsonl")).await;
    assert_eq!(
        text.lines().count(),
        10,
        "6 API labels + 4 browser labels (the skip and the label taken back are not labels): {text}"
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

/// Whether a WebDriver error says the element left the document before the command ran.
fn is_stale(error: &Value) -> bool {
    let message = error["message"].as_str().unwrap_or("");
    error["error"] == "stale element reference"
        || (error["error"] == "unknown error"
            && (message.contains("does not belong to the document")
                || message.contains("No node with given id found")))
}
