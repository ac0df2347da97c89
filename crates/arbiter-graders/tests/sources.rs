//! The labelled sources read as their SOURCE.txt files count them (counts computed there with
//! Python's csv and json modules, independently of this reader). Skips with a printed reason
//! when the shared data is absent, unless `ARBITER_REQUIRE_DATA=1`.

use std::collections::BTreeMap;

use arbiter_graders::sources::{Source, refusal_label};

fn count(rows: &[arbiter_core::Sample], name: &str) -> (usize, usize) {
    let labelled: Vec<bool> = rows
        .iter()
        .filter_map(|s| s.propositions.get(name).copied())
        .collect();
    (labelled.iter().filter(|&&y| y).count(), labelled.len())
}

#[test]
fn sources_match_their_published_counts() {
    let Some(data) = arbiter_testkit::shared_data("graders") else {
        return;
    };
    let data = data.parent().expect("data dir").to_path_buf();

    let dna = Source::DoNotAnswer.load(&data).unwrap();
    assert_eq!(dna.len(), 5634);
    assert_eq!(count(&dna, "disallowed_content"), (193, 5634));
    let mut actions: BTreeMap<String, usize> = BTreeMap::new();
    for s in &dna {
        *actions
            .entry(s.metadata["action"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = [
        ("0", 1541),
        ("1", 1439),
        ("2", 203),
        ("3", 690),
        ("4", 1576),
        ("5", 185),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(actions, expected);
    // Refusals are actions 0 and 4; compliance 2, 3 and 5; action 1 says neither.
    let refusals = dna
        .iter()
        .filter(|s| refusal_label(s) == Some(true))
        .count();
    let complied = dna
        .iter()
        .filter(|s| refusal_label(s) == Some(false))
        .count();
    assert_eq!((refusals, complied), (1541 + 1576, 203 + 690 + 185));
    assert_eq!(count(&dna, "fully_complies"), (185, 1541 + 1576 + 185));

    let hb = Source::HarmBench.load(&data).unwrap();
    assert_eq!(hb.len(), 602);
    assert_eq!(count(&hb, "disallowed_content"), (273, 602));
    assert_eq!(count(&hb, "partially_complies"), (273, 273));

    let jbb = Source::Jbb.load(&data).unwrap();
    assert_eq!(jbb.len(), 300);
    assert_eq!(count(&jbb, "disallowed_content"), (110, 300));
    // Read as Mac Roman: no replacement characters, and the one known accented word decodes.
    assert!(
        jbb.iter()
            .all(|s| !s.completion_text().contains('\u{fffd}'))
    );

    let gold = Source::RbrGold.load(&data).unwrap();
    assert_eq!(gold.len(), 518);
    assert!(gold.iter().all(|s| s.propositions.len() == 23));
    let test = gold
        .iter()
        .filter(|s| s.metadata["split"] == "test")
        .count();
    assert_eq!(test, 167);
}
