from balancer.files.naming import (
    from_client_subfolder,
    rewrite_history_entry,
    to_client_subfolder,
)


def test_prefix_round_trips_with_and_without_a_real_subfolder() -> None:
    for backend, sub in [("gpu0", ""), ("gpu-1", "a/b"), ("x_y", "odd name")]:
        split = from_client_subfolder(to_client_subfolder(backend, sub))
        assert (split.backend, split.subfolder) == (backend, sub)


def test_plain_subfolder_has_no_backend() -> None:
    split = from_client_subfolder("sub")
    assert (split.backend, split.subfolder) == (None, "sub")


def test_same_file_on_two_backends_gets_two_client_names() -> None:
    entry = {
        "outputs": {
            "9": {
                "images": [{"filename": "ComfyUI_00001_.png", "subfolder": "", "type": "output"}],
                "animated": [False],
            }
        }
    }
    a = rewrite_history_entry("gpu0", entry)["outputs"]["9"]["images"][0]
    b = rewrite_history_entry("gpu1", entry)["outputs"]["9"]["images"][0]
    assert a["filename"] == b["filename"] == "ComfyUI_00001_.png"
    assert a["subfolder"] != b["subfolder"]
    assert rewrite_history_entry("gpu0", entry)["outputs"]["9"]["animated"] == [False]


def test_input_files_are_not_renamed() -> None:
    entry = {
        "outputs": {"1": {"images": [{"filename": "x.png", "subfolder": "", "type": "input"}]}}
    }
    assert rewrite_history_entry("gpu0", entry) == entry
