//! Layout checks of HTML pages in real Chromium: at a fixed viewport width, nothing may scroll
//! sideways, spill past the viewport or be clipped inside a figure. A reader who prints a report
//! or pastes it into a system card sees what the check saw.
//!
//! The page is loaded headless from a copy with one measuring script appended (the reports
//! themselves carry no scripts); the script writes what it found into the DOM, which Chromium
//! dumps. A screenshot of the whole page is taken on request.

use std::path::{Path, PathBuf};
use std::process::Command;

const CHROMIUM: &str = "/usr/bin/chromium";

/// A JavaScript expression, evaluated in a loaded page, whose value is
/// `{problems: [string], height: number}`. The problems, one string each:
/// - the page itself scrolling sideways;
/// - any element (outside SVG) reaching past the viewport's left or right edge (inside a box
///   that scrolls or clips, only that box is listed);
/// - any element that scrolls or clips its content sideways (`overflow-x` not `visible` and
///   content wider than the box): a table cut off behind a scroll bar;
/// - any SVG text whose box leaves its SVG's box (clipped, like a cut-off legend or title);
/// - any two SVG texts of one figure that overlap (legend entries written over each other).
///
/// `height` is the page's full height, for a whole-page screenshot. Usable over WebDriver too
/// (`return ` + this).
pub const LAYOUT_JS: &str = r#"(function () {
  const W = document.documentElement.clientWidth;
  const found = [];
  const name = (el) => {
    let s = el.tagName.toLowerCase();
    if (el.id) s += '#' + el.id;
    if (el.className && typeof el.className === 'string') s += '.' + el.className.trim().split(/\s+/).join('.');
    const text = (el.textContent || '').trim().replace(/\s+/g, ' ').slice(0, 60);
    return s + (text ? ' "' + text + '"' : '');
  };
  if (document.documentElement.scrollWidth > W + 1) {
    found.push('the page scrolls sideways: ' + document.documentElement.scrollWidth + ' px wide at ' + W + ' px');
  }
  for (const el of document.querySelectorAll('body *')) {
    if (el.closest('svg') && el.tagName.toLowerCase() !== 'svg') continue;
    if (el.tagName.toLowerCase() === 'script') continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    let clipped = false;
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      if (getComputedStyle(a).overflowX !== 'visible') { clipped = true; break; }
    }
    if (!clipped && (r.right > W + 1 || r.left < -1)) {
      found.push(name(el) + ' spans ' + Math.round(r.left) + '..' + Math.round(r.right) + ' px, past the ' + W + ' px viewport');
    }
    const ox = getComputedStyle(el).overflowX;
    if (ox !== 'visible' && el.scrollWidth > el.clientWidth + 1) {
      found.push(name(el) + ' hides ' + (el.scrollWidth - el.clientWidth) + ' px sideways (overflow-x: ' + ox + ')');
    }
  }
  for (const svg of document.querySelectorAll('svg')) {
    const box = svg.getBoundingClientRect();
    const title = (svg.querySelector('title') || {}).textContent || '(untitled figure)';
    const texts = Array.from(svg.querySelectorAll('text')).filter((t) => (t.textContent || '').trim() !== '');
    const rects = texts.map((t) => t.getBoundingClientRect());
    texts.forEach((t, i) => {
      const r = rects[i];
      if (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 || r.bottom > box.bottom + 1) {
        found.push('figure "' + title + '": text "' + t.textContent + '" is clipped by the figure edge');
      }
    });
    for (let i = 0; i < rects.length; i++) {
      for (let j = i + 1; j < rects.length; j++) {
        const a = rects[i], b = rects[j];
        const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
        const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
        if (w > 2 && h > 2 && w * h > 0.2 * Math.min(a.width * a.height, b.width * b.height)) {
          found.push('figure "' + title + '": text "' + texts[i].textContent + '" overlaps "' + texts[j].textContent + '"');
        }
      }
    }
  }
  return { problems: found, height: document.documentElement.scrollHeight };
})()"#;

/// Chromium's path, or `None` after printing why the caller skips; under
/// `ARBITER_REQUIRE_BROWSER=1` (CI) a missing browser panics instead.
pub fn chromium() -> Option<PathBuf> {
    let path = PathBuf::from(CHROMIUM);
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var("ARBITER_REQUIRE_BROWSER").as_deref() != Ok("1"),
        "ARBITER_REQUIRE_BROWSER=1 but {CHROMIUM} is missing (apt-get install -y chromium)"
    );
    eprintln!("SKIPPED: {CHROMIUM} is missing (apt-get install -y chromium)");
    None
}

/// What Chromium found on one page.
#[derive(Debug, Clone)]
pub struct Layout {
    /// One line per problem (empty when the page fits).
    pub problems: Vec<String>,
    /// The page's full height in CSS pixels.
    pub height: u32,
}

fn headless(chromium: &Path, width: u32, height: u32) -> Command {
    let mut c = Command::new(chromium);
    c.args([
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--virtual-time-budget=5000",
    ])
    .arg(format!("--window-size={width},{height}"));
    c
}

/// The value of `attr="…"` on the dumped `<body>`.
fn body_attr<'a>(dom: &'a str, attr: &str) -> Option<&'a str> {
    let body = &dom[dom.find("<body")?..];
    let body = &body[..body.find('>')?];
    let start = body.find(&format!("{attr}=\""))? + attr.len() + 2;
    let len = body[start..].find('"')?;
    Some(&body[start..start + len])
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Loads `html` (a self-contained page) in Chromium `width` px wide and reports its layout
/// problems. With `screenshot`, also writes a PNG of the whole page there.
pub fn check(
    chromium: &Path,
    html: &Path,
    width: u32,
    screenshot: Option<&Path>,
) -> Result<Layout, String> {
    let text = std::fs::read_to_string(html).map_err(|e| format!("{}: {e}", html.display()))?;
    let at = text
        .rfind("</body>")
        .ok_or_else(|| format!("{}: no </body>", html.display()))?;
    let measured = html.with_extension("measure.html");
    std::fs::write(
        &measured,
        format!(
            "{}<script>const layout = {LAYOUT_JS}; document.body.setAttribute('data-layout-problems', JSON.stringify(layout.problems)); document.body.setAttribute('data-page-height', String(layout.height));</script>{}",
            &text[..at],
            &text[at..]
        ),
    )
    .map_err(|e| format!("{}: {e}", measured.display()))?;
    let url = format!("file://{}", measured.display());
    let out = headless(chromium, width, 900)
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .map_err(|e| format!("chromium: {e}"))?;
    let _ = std::fs::remove_file(&measured);
    let dom = String::from_utf8_lossy(&out.stdout);
    let problems = body_attr(&dom, "data-layout-problems").ok_or_else(|| {
        format!(
            "chromium did not run the measuring script on {} (status {}): {}",
            html.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let problems: Vec<String> = serde_json::from_str(&unescape(problems))
        .map_err(|e| format!("measuring script output: {e}"))?;
    let height = body_attr(&dom, "data-page-height")
        .and_then(|h| h.parse().ok())
        .unwrap_or(900);
    if let Some(png) = screenshot {
        // Chromium caps very tall windows; a report longer than that is cut, which is enough
        // for looking at it.
        let out = headless(chromium, width, height.clamp(300, 16_000))
            .arg(format!("--screenshot={}", png.display()))
            .arg(format!("file://{}", html.display()))
            .output()
            .map_err(|e| format!("chromium: {e}"))?;
        if !png.is_file() {
            return Err(format!(
                "no screenshot of {} (status {}): {}",
                html.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    Ok(Layout { problems, height })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_attributes_are_read_and_unescaped() {
        let dom = r#"<html><body data-layout-problems="[&quot;a &amp; b&quot;]" data-page-height="1234"><p>x</p></body>"#;
        let p: Vec<String> =
            serde_json::from_str(&unescape(body_attr(dom, "data-layout-problems").unwrap()))
                .unwrap();
        assert_eq!(p, vec!["a & b".to_string()]);
        assert_eq!(body_attr(dom, "data-page-height"), Some("1234"));
        assert_eq!(body_attr(dom, "data-missing"), None);
    }

    /// The check itself: a table wider than the page behind a scroll bar, an element past the
    /// viewport and a clipped SVG legend are each found; a page that fits has no problems.
    #[test]
    fn finds_sideways_scrolling_spills_and_clipped_figure_text() {
        let Some(chromium) = chromium() else { return };
        let dir = crate::TempDir::new("pages-check");
        let wide = "x".repeat(400);
        let bad = dir.write(
            "bad.html",
            &format!(
                "<!DOCTYPE html><html><body style=\"max-width:40rem\">\
                 <table style=\"display:block;overflow-x:auto\"><tr><td>{wide}</td></tr></table>\
                 <div style=\"width:1400px\">wide</div>\
                 <svg viewBox=\"0 0 200 40\" width=\"200\" height=\"40\"><title>legend</title>\
                 <text x=\"150\" y=\"20\">threatening_language</text>\
                 <text x=\"10\" y=\"20\">first</text><text x=\"14\" y=\"20\">second</text></svg>\
                 </body></html>"
            ),
        );
        let layout = check(&chromium, &bad, 1280, None).unwrap();
        let all = layout.problems.join("\n");
        assert!(all.contains("hides"), "{all}");
        assert!(all.contains("div \"wide\" spans"), "{all}");
        assert!(
            !all.contains("td \""),
            "inside the scrolling table only the table counts: {all}"
        );
        assert!(all.contains("the page scrolls sideways"), "{all}");
        assert!(all.contains("\"threatening_language\" is clipped"), "{all}");
        assert!(all.contains("\"first\" overlaps \"second\""), "{all}");
        let good = dir.write(
            "good.html",
            "<!DOCTYPE html><html><body style=\"max-width:40rem\"><table><tr><td>short</td></tr></table>\
             <svg viewBox=\"0 0 200 40\" width=\"200\" height=\"40\"><text x=\"10\" y=\"20\">fits</text></svg>\
             </body></html>",
        );
        let png = dir.path("good.png");
        let layout = check(&chromium, &good, 1280, Some(&png)).unwrap();
        assert!(layout.problems.is_empty(), "{:?}", layout.problems);
        assert!(std::fs::metadata(&png).unwrap().len() > 100);
    }
}
