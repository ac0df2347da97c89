//! The perspectivist metrics, exactly as the shared tasks compute them (annotation.md §10).
//!
//! Distributions are rows of class probabilities; targets are the share of an item's
//! annotators choosing each class.

/// LeWiDi 2023 soft cross-entropy: the mean over items of Σ_c −t_c · ln(clip(p_c) + 1e-9),
/// with p clipped to [1e-12, 1 − 1e-12]. `None` for no items.
pub fn soft_ce(predicted: &[Vec<f64>], target: &[Vec<f64>]) -> Option<f64> {
    assert_eq!(predicted.len(), target.len(), "one prediction per target");
    if predicted.is_empty() {
        return None;
    }
    let total: f64 = predicted
        .iter()
        .zip(target)
        .map(|(p, t)| item_ce(p, t))
        .sum();
    Some(total / predicted.len() as f64)
}

/// One item's term of [`soft_ce`].
pub fn item_ce(p: &[f64], t: &[f64]) -> f64 {
    p.iter()
        .zip(t)
        .map(|(&p, &t)| -t * (p.clamp(1e-12, 1.0 - 1e-12) + 1e-9).ln())
        .sum()
}

/// LeWiDi 2025 soft metric: the mean over items of the Manhattan distance Σ_k |p_k − t_k|.
pub fn manhattan(predicted: &[Vec<f64>], target: &[Vec<f64>]) -> Option<f64> {
    assert_eq!(predicted.len(), target.len(), "one prediction per target");
    if predicted.is_empty() {
        return None;
    }
    let total: f64 = predicted
        .iter()
        .zip(target)
        .map(|(p, t)| p.iter().zip(t).map(|(p, t)| (p - t).abs()).sum::<f64>())
        .sum();
    Some(total / predicted.len() as f64)
}

/// Micro-averaged F1 over single-label predictions (sklearn `average='micro'`): with one label
/// per item every miss is one false positive and one false negative, so it equals accuracy.
pub fn micro_f1(predicted: &[u16], gold: &[u16]) -> Option<f64> {
    assert_eq!(predicted.len(), gold.len(), "one prediction per gold label");
    if gold.is_empty() {
        return None;
    }
    let tp = predicted.iter().zip(gold).filter(|(p, g)| p == g).count() as f64;
    let fp = gold.len() as f64 - tp;
    let fn_ = fp;
    Some(2.0 * tp / (2.0 * tp + fp + fn_))
}

/// Macro-averaged F1 as sklearn computes it with `zero_division=0`: per class present in the
/// gold or predicted labels, 2·TP / (2·TP + FP + FN), averaged over those classes.
pub fn macro_f1(predicted: &[u16], gold: &[u16]) -> Option<f64> {
    assert_eq!(predicted.len(), gold.len(), "one prediction per gold label");
    if gold.is_empty() {
        return None;
    }
    let n = predicted
        .iter()
        .chain(gold)
        .map(|&c| c as usize + 1)
        .max()?;
    let (mut tp, mut fp, mut fn_) = (vec![0usize; n], vec![0usize; n], vec![0usize; n]);
    for (&p, &g) in predicted.iter().zip(gold) {
        if p == g {
            tp[p as usize] += 1;
        } else {
            fp[p as usize] += 1;
            fn_[g as usize] += 1;
        }
    }
    let mut sum = 0.0;
    let mut classes = 0;
    for c in 0..n {
        let denominator = 2 * tp[c] + fp[c] + fn_[c];
        if denominator > 0 {
            sum += 2.0 * tp[c] as f64 / denominator as f64;
            classes += 1;
        }
    }
    Some(sum / classes as f64)
}

/// LeWiDi 2025 per-annotator error rate: the mean over items of (1/aᵢ) Σ over the item's
/// annotators of |t − p| between each annotator's label and the prediction for that annotator.
/// Labels are class indices, so for binary labels |t − p| is 0 or 1; for more classes a miss
/// counts 1. `per_item` holds, per item, (gold, predicted) for each of its annotators.
pub fn per_annotator_error_rate(per_item: &[Vec<(u16, u16)>]) -> Option<f64> {
    let items: Vec<f64> = per_item
        .iter()
        .filter(|pairs| !pairs.is_empty())
        .map(|pairs| pairs.iter().filter(|(t, p)| t != p).count() as f64 / pairs.len() as f64)
        .collect();
    if items.is_empty() {
        return None;
    }
    Some(items.iter().sum::<f64>() / items.len() as f64)
}

/// The index of the largest probability; ties go to the lower class.
pub fn argmax(p: &[f64]) -> u16 {
    let mut best = 0;
    for (c, &v) in p.iter().enumerate() {
        if v > p[best] {
            best = c;
        }
    }
    best as u16
}

/// Pearson's r, `None` when either side has no variance or there are fewer than 3 pairs.
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    assert_eq!(x.len(), y.len(), "paired values");
    let n = x.len();
    if n < 3 {
        return None;
    }
    let mx = x.iter().sum::<f64>() / n as f64;
    let my = y.iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    if sxx <= 0.0 || syy <= 0.0 {
        return None;
    }
    Some(sxy / (sxx * syy).sqrt())
}

/// How far apart a set of distributions is: the root mean squared distance of each from their
/// mean. For the annotators' own one-hot labels this is the observed disagreement
/// (√Σ_c t_c(1 − t_c)); for the model's per-annotator predictions, its expected disagreement.
pub fn spread(rows: &[&[f64]]) -> f64 {
    if rows.is_empty() {
        return 0.0;
    }
    let k = rows[0].len();
    let mut mean = vec![0.0; k];
    for r in rows {
        for (m, v) in mean.iter_mut().zip(r.iter()) {
            *m += v / rows.len() as f64;
        }
    }
    let ss: f64 = rows
        .iter()
        .map(|r| {
            r.iter()
                .zip(&mean)
                .map(|(v, m)| (v - m) * (v - m))
                .sum::<f64>()
        })
        .sum();
    (ss / rows.len() as f64).sqrt()
}

/// Observed disagreement of a soft label t: √Σ_c t_c(1 − t_c), the [`spread`] of the one-hot
/// labels behind it.
pub fn observed_spread(t: &[f64]) -> f64 {
    // Shares summed from 1/n steps can exceed 1 by an ulp; a unanimous item is 0, never NaN.
    t.iter()
        .map(|&v| v * (1.0 - v))
        .sum::<f64>()
        .max(0.0)
        .sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn soft_ce_by_hand() {
        // Item 1: t = (1/3, 2/3), p = (0.5, 0.5): (1/3 + 2/3)·(−ln(0.5 + 1e-9)).
        // Item 2: t = (1, 0), p = (1, 0): p clipped to 1 − 1e-12 → −ln(1 − 1e-12 + 1e-9).
        let ce = soft_ce(
            &[vec![0.5, 0.5], vec![1.0, 0.0]],
            &[vec![1.0 / 3.0, 2.0 / 3.0], vec![1.0, 0.0]],
        )
        .unwrap();
        let expected = (-(0.5f64 + 1e-9).ln() - (1.0 - 1e-12 + 1e-9f64).ln()) / 2.0;
        assert!(close(ce, expected), "{ce} vs {expected}");
        // A confident miss is bounded by the clip: −ln(1e-12 + 1e-9).
        let worst = soft_ce(&[vec![0.0, 1.0]], &[vec![1.0, 0.0]]).unwrap();
        assert!(close(worst, -(1e-12f64 + 1e-9).ln()));
        assert_eq!(soft_ce(&[], &[]), None);
    }

    #[test]
    fn manhattan_and_error_rate_by_hand() {
        let m = manhattan(
            &[vec![0.2, 0.8], vec![0.5, 0.5]],
            &[vec![0.0, 1.0], vec![1.0, 0.0]],
        );
        assert!(close(m.unwrap(), (0.4 + 1.0) / 2.0));
        // Item 1: 1 of 3 annotators missed; item 2: 2 of 2; item 3 has no annotators.
        let e =
            per_annotator_error_rate(&[vec![(1, 1), (0, 1), (0, 0)], vec![(1, 0), (0, 1)], vec![]]);
        assert!(close(e.unwrap(), (1.0 / 3.0 + 1.0) / 2.0));
    }

    #[test]
    fn macro_f1_by_hand_with_a_class_never_predicted() {
        // gold 0 0 1 1 2, predicted 0 1 1 1 0: class 0 TP1 FP1 FN1 → 0.5; class 1 TP2 FP1 FN0
        // → 0.8; class 2 TP0 FN1 → 0.
        let f = macro_f1(&[0, 1, 1, 1, 0], &[0, 0, 1, 1, 2]).unwrap();
        assert!(close(f, (0.5 + 0.8 + 0.0) / 3.0));
        // A class absent from both sides does not count.
        assert!(close(macro_f1(&[0, 2], &[0, 2]).unwrap(), 1.0));
        assert!(close(
            micro_f1(&[0, 1, 1, 1, 0], &[0, 0, 1, 1, 2]).unwrap(),
            0.6
        ));
    }

    #[test]
    fn spread_of_one_hot_labels_is_the_observed_disagreement() {
        let labels: Vec<Vec<f64>> = vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![0.0, 1.0]];
        let rows: Vec<&[f64]> = labels.iter().map(|r| r.as_slice()).collect();
        let t = [1.0 / 3.0, 2.0 / 3.0];
        assert!(close(spread(&rows), observed_spread(&t)));
        assert!(close(
            pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.5])
                .unwrap()
                .signum(),
            1.0
        ));
        assert_eq!(pearson(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
        // Nine ninths sum past 1 in floating point: still no disagreement, not NaN.
        let unanimous: f64 = (0..9).map(|_| 1.0 / 9.0).sum();
        assert!(unanimous > 1.0);
        assert_eq!(observed_spread(&[unanimous, 0.0]), 0.0);
    }
}
