from balancer.jobs.ids import is_safe_prompt_id, workflow_digest


def test_safe_ids() -> None:
    assert is_safe_prompt_id("b976c043-e9dd-40ab-8613-2f3341b1db31")
    assert is_safe_prompt_id("my.job_1-A")
    assert is_safe_prompt_id("x" * 128)


def test_unsafe_ids() -> None:
    for bad in ["", "x" * 129, "../etc", "a/b", "a b", "é", 5, None, ["x"]]:
        assert not is_safe_prompt_id(bad), bad


def test_digest_ignores_key_order() -> None:
    assert workflow_digest({"a": 1, "b": {"c": 2, "d": 3}}) == workflow_digest(
        {"b": {"d": 3, "c": 2}, "a": 1}
    )
    assert workflow_digest({"a": 1}) != workflow_digest({"a": 2})


def test_dot_ids_are_not_a_single_path_segment() -> None:
    for bad in [".", ".."]:
        assert not is_safe_prompt_id(bad), bad
    assert is_safe_prompt_id("...") and is_safe_prompt_id(".x")
