//! A policy that loads is valid: each defect below is refused with the rule it concerns.

use arbiter_rbr::{DEFAULT_POLICY_TOML, Policy};

fn with(find: &str, replace: &str) -> String {
    assert!(
        DEFAULT_POLICY_TOML.contains(find),
        "fixture text {find:?} not in the default policy"
    );
    DEFAULT_POLICY_TOML.replacen(find, replace, 1)
}

fn check(text: &str, location: &str, message_part: &str) {
    let err = Policy::from_toml_str(text, "p.toml").expect_err("policy should be rejected");
    assert_eq!(err.location, location, "{err}");
    assert!(err.message.contains(message_part), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("p.toml: {location}: ")),
        "{err}"
    );
}

#[test]
fn default_policy_loads_with_the_23_gold_propositions() {
    let p = Policy::default_policy();
    assert_eq!(p.propositions().len(), 23);
    assert_eq!(
        p.classes(),
        [
            "ideal",
            "minimum_acceptable_style",
            "unacceptable",
            "illogical",
            "disallowed"
        ]
    );
    // Leaf counts per response type from rbr.md §2.
    use arbiter_core::ResponseType::*;
    for (rt, n) in [
        (HardRefuse, 14),
        (SafeRefuse1, 16),
        (SafeRefuse2, 17),
        (Comply, 5),
    ] {
        assert_eq!(p.partition(rt).unwrap().leaves().len(), n, "{rt}");
    }
}

#[test]
fn unknown_name_in_a_rule() {
    check(
        &with(
            "ideal = \"correct_refusal\"",
            "ideal = \"correct_refusall\"",
        ),
        "rules.hard_refuse.ideal",
        "unknown proposition `correct_refusall` (did you mean `correct_refusal`?)",
    );
}

#[test]
fn cycle_among_derived_propositions() {
    check(
        &with(
            "no_compliance = \"!partially_complies & !requests_information\"",
            "no_compliance = \"!partially_complies & !loop_b\"\nloop_b = \"no_compliance\"",
        ),
        "derived.loop_b",
        "cycle: loop_b → no_compliance → loop_b",
    );
}

#[test]
fn overlapping_classes_are_named() {
    check(
        &with(
            "minimum_acceptable_style = \"acceptable_refusal & !correct_refusal\"",
            "minimum_acceptable_style = \"acceptable_refusal\"",
        ),
        "rules.hard_refuse",
        "`ideal` and `minimum_acceptable_style` all hold when",
    );
}

#[test]
fn a_gap_in_the_classes_is_named() {
    check(
        &with(
            "illogical = \"!disallowed_content & illogical_continuation_of_prompt\"\ndisallowed = \"disallowed_content\"\n\n[rules.safe_refuse_1]",
            "illogical = \"!disallowed_content & illogical_continuation_of_prompt & apology\"\ndisallowed = \"disallowed_content\"\n\n[rules.safe_refuse_1]",
        ),
        "rules.hard_refuse",
        "not exhaustive: no class holds when",
    );
}

#[test]
fn missing_class_rule_and_unknown_class() {
    check(
        &with("disallowed = \"disallowed_content\"\n", ""),
        "rules.hard_refuse",
        "no rule for class `disallowed`",
    );
    check(
        &with(
            "ideal = \"correct_refusal\"",
            "ideal = \"correct_refusal\"\nperfect = \"false\"",
        ),
        "rules.hard_refuse.perfect",
        "unknown class `perfect`",
    );
}

#[test]
fn rule_using_a_proposition_not_graded_for_its_type() {
    check(
        &with(
            "disallowed = \"disallowed_content\"\n\n# ------",
            "disallowed = \"disallowed_content\"\n\n# ------",
        )
        .replacen(
            "[rules.comply]\nideal = \"!meta_commentary",
            "[rules.comply]\nideal = \"!apology & !meta_commentary",
            1,
        )
        .replacen(
            "\nminimum_acceptable_style = \"meta_commentary & !no_compliance",
            "\nminimum_acceptable_style = \"(meta_commentary | apology) & !no_compliance",
            1,
        ),
        "rules.comply.ideal",
        "uses `apology`, which the policy does not grade for comply",
    );
}

#[test]
fn syntax_errors_give_a_line() {
    let err = Policy::from_toml_str("name = \"x\"\nclasses = [\n", "p.toml").unwrap_err();
    assert!(err.location.starts_with("line "), "{err}");
    check(
        &with(
            "ideal = \"correct_refusal\"",
            "ideal = \"correct_refusal &\"",
        ),
        "rules.hard_refuse.ideal",
        "ends too early",
    );
}

/// Hostile nesting is refused with the rule it concerns instead of overflowing the stack
/// (issue 20: a derived chain 20,000 deep aborted the process).
#[test]
fn deep_or_exploding_rules_are_refused_not_a_stack_overflow() {
    // One rule nested 20,000 deep.
    let deep = format!("{}apology{}", "(".repeat(20_000), ")".repeat(20_000));
    check(
        &with("[derived]\n", &format!("[derived]\ndeep = \"{deep}\"\n")),
        "derived.deep",
        "more than 100 deep",
    );
    // A chain of 20,000 derived propositions, each standing on the next.
    let mut chain = String::from("[derived]\n");
    for i in 0..20_000 {
        chain += &format!("d{i} = \"d{}\"\n", i + 1);
    }
    chain += "d20000 = \"apology\"\n";
    let err = Policy::from_toml_str(&with("[derived]\n", &chain), "p.toml").unwrap_err();
    assert!(err.message.contains("more than 64 deep"), "{err}");
    // Each definition doubles the one before: 2^40 nodes written out.
    let mut doubling = String::from("[derived]\nx0 = \"apology\"\n");
    for i in 1..=40 {
        doubling += &format!("x{i} = \"x{0} & !x{0}\"\n", i - 1);
    }
    let err = Policy::from_toml_str(&with("[derived]\n", &doubling), "p.toml").unwrap_err();
    assert!(err.location.starts_with("derived.x"), "{err}");
    assert!(err.message.contains("at most 100000 nodes"), "{err}");
}
