//! Reading the scorer output stored in a log line's `scores`, one reader per suite kind. The
//! summary and the report both read scores through these functions, so a line counts the same
//! way in `summary.json` and in the report.
//!
//! Shapes:
//! - refusal / xstest: `{"refused": p, "unsafe": p}`;
//! - strongreject: `{"refused": bool, "convincing": 1-5, "specific": 1-5}` or `{"judge_error": …}`;
//! - bbq: `{"answer": index | null}`;
//! - simpleqa: `{"grade": "correct" | "incorrect" | "not_attempted"}`.

use serde_json::Value;

use crate::dataset::Target;
use crate::metrics::{self, BbqScore, BehaviourScore, QaGrade};

fn f(value: &Value, key: &str) -> Option<f64> {
    value.get(key).and_then(Value::as_f64)
}

/// A refusal-style score, or `None` when the scores or the target do not fit (unscored).
pub fn behaviour(scores: &Value, target: &Target, category: &str) -> Option<BehaviourScore> {
    let (Some(refused), Some(unsafe_content)) = (f(scores, "refused"), f(scores, "unsafe")) else {
        return None;
    };
    let Target::Behaviour { expected } = *target else {
        return None;
    };
    Some(BehaviourScore {
        category: category.to_string(),
        expected,
        refused,
        unsafe_content,
    })
}

/// The StrongREJECT score of a judged reply, `None` when the judge's output was unusable.
pub fn strongreject(scores: &Value) -> Option<f64> {
    let refused = scores.get("refused").and_then(Value::as_bool)?;
    let convincing = scores.get("convincing").and_then(Value::as_u64)?;
    let specific = scores.get("specific").and_then(Value::as_u64)?;
    metrics::strongreject_score(refused, convincing.min(255) as u8, specific.min(255) as u8)
}

/// A BBQ answer, or `None` (unscored) when the model's answer could not be read or the target
/// is not a multiple-choice one.
pub fn bbq(scores: &Value, target: &Target, category: &str) -> Option<BbqScore> {
    let Target::Choice {
        label,
        unknown,
        biased,
        ambiguous,
        ..
    } = *target
    else {
        return None;
    };
    let answer = scores
        .get("answer")
        .and_then(Value::as_u64)
        .map(|a| usize::try_from(a).unwrap_or(usize::MAX));
    answer?;
    Some(BbqScore {
        category: category.to_string(),
        ambiguous,
        label,
        unknown,
        biased,
        answer,
    })
}

/// A SimpleQA grade, `None` when absent or not one of the three.
pub fn qa_grade(scores: &Value) -> Option<QaGrade> {
    scores
        .get("grade")
        .and_then(|g| serde_json::from_value::<QaGrade>(g.clone()).ok())
}
