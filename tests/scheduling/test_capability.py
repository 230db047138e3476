"""The capability filter: what a prompt needs, what a catalogue lacks, and the
outcome names when only the capable set is out."""

from __future__ import annotations

from typing import Any

from balancer.catalog.model import Catalogue, parse_object_info
from balancer.catalog.needs import Value, needs_of, unmet, unmet_everywhere
from balancer.scheduling import Chosen, NoBackend, Picker

from .test_picker import cand

OBJECT_INFO: dict[str, Any] = {
    "CheckpointLoaderSimple": {"input": {"required": {"ckpt_name": [["a.safetensors"]]}}},
    "LoadImage": {"input": {"required": {"image": [["x.png"], {"image_upload": True}]}}},
    "KSampler": {
        "input": {
            "required": {"model": ["MODEL"], "seed": ["INT", {}]},
            "optional": {"sampler_name": ["COMBO", {"options": ["euler", "dpm"]}]},
        }
    },
}

PROMPT: dict[str, Any] = {
    "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "b.safetensors"}},
    "2": {"class_type": "LoadImage", "inputs": {"image": "mine.png"}},
    "3": {
        "class_type": "KSampler",
        "inputs": {"model": ["1", 0], "seed": 5, "sampler_name": "euler"},
    },
    "4": {"class_type": "FancyNode", "inputs": {"image": "@gpu0/out.png [output]"}},
}


def catalogue(info: dict[str, Any]) -> Catalogue:
    return Catalogue(*parse_object_info(info))


def test_a_catalogue_keeps_class_names_and_checked_combos_only() -> None:
    c = catalogue(OBJECT_INFO)
    assert c.classes == {"CheckpointLoaderSimple", "LoadImage", "KSampler"}
    assert c.combos == {
        ("CheckpointLoaderSimple", "ckpt_name"): {"a.safetensors"},
        ("KSampler", "sampler_name"): {"euler", "dpm"},
    }  # the upload widget's list is the balancer's business


def test_unmet_names_missing_classes_and_values_but_not_links_or_placed_files() -> None:
    assert unmet(catalogue(OBJECT_INFO), needs_of(PROMPT)) == [
        ("4", "FancyNode"),
        Value("1", "CheckpointLoaderSimple", "ckpt_name", "b.safetensors"),
    ]
    info = {**OBJECT_INFO, "FancyNode": {"input": {"required": {"image": ["IMAGE"]}}}}
    info["CheckpointLoaderSimple"] = {
        "input": {"required": {"ckpt_name": [["a.safetensors", "b.safetensors"]]}}
    }
    assert unmet(catalogue(info), needs_of(PROMPT)) == []


def test_unmet_everywhere_is_what_no_catalogue_offers() -> None:
    one = catalogue(OBJECT_INFO)
    info = {**OBJECT_INFO, "FancyNode": {"input": {"required": {"image": ["IMAGE"]}}}}
    two = catalogue(info)
    # Nobody has b.safetensors; FancyNode exists on `two`.
    assert unmet_everywhere([one, two], needs_of(PROMPT)) == [
        Value("1", "CheckpointLoaderSimple", "ckpt_name", "b.safetensors")
    ]
    assert unmet_everywhere([], needs_of(PROMPT)) == []


def test_only_capable_backends_are_picked_and_the_reason_names_the_capable_set() -> None:
    picker = Picker()
    pool = [cand("a", 0, 0, capable=False), cand("b", 1, 5), cand("c", 2, 9, capable=False)]
    assert picker.pick(pool) == Chosen("b")
    drained = [cand("a", 0, 0, capable=False), cand("b", 1, 5, draining=True)]
    assert picker.pick(drained) == NoBackend(
        "capable_all_draining", "every backend that is up is draining (of the capable backends)"
    )
    down = [cand("a", 0, 0, capable=False), cand("b", 1, 0, healthy=False)]
    assert isinstance(picker.pick(down), NoBackend)
    assert picker.pick(down).outcome == "capable_all_down"  # type: ignore[union-attr]


def test_when_none_is_capable_a_plainer_reason_comes_first() -> None:
    picker = Picker()
    unknown_and_down = [cand("a", 0, 0, capable=False, healthy=False)]
    assert picker.pick(unknown_and_down).outcome == "all_down"  # type: ignore[union-attr]
    unknown_but_up = [cand("a", 0, 0, capable=False)]
    assert picker.pick(unknown_but_up).outcome == "not_capable"  # type: ignore[union-attr]
