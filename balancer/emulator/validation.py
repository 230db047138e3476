"""POST /prompt graph validation with ComfyUI 0.3.64's error types, messages and shapes."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .catalog import Catalog

JSON = dict[str, Any]
Verdict = tuple[bool, list[JSON], Any]
CustomCheck = Callable[[Any], "bool | str"]


@dataclass
class ValidationResult:
    ok: bool
    error: JSON | None
    outputs: list[str]
    node_errors: JSON = field(default_factory=dict)


def _error(kind: str, message: str, details: str = "") -> JSON:
    return {"type": kind, "message": message, "details": details, "extra_info": {}}


def _type_name(exc: BaseException) -> str:
    module = type(exc).__module__
    name = type(exc).__qualname__
    return name if module == "builtins" else f"{module}.{name}"


def _convert(input_type: Any, value: Any) -> Any:
    if input_type == "INT":
        return int(value)
    if input_type == "FLOAT":
        return float(value)
    if input_type == "STRING":
        return str(value)
    if input_type == "BOOLEAN":
        return bool(value)
    return value


def _types_match(received: Any, expected: Any) -> bool:
    if isinstance(expected, list):
        expected = "COMBO"
    if received == "*" or expected == "*" or received == expected:
        return True
    if isinstance(received, str) and isinstance(expected, str):
        return bool(set(received.split(",")) & set(expected.split(",")))
    return False


class Validator:
    """One validation run over one prompt (mutates it: values are converted, as in ComfyUI)."""

    def __init__(self, catalog: Catalog, custom: dict[str, dict[str, CustomCheck]]) -> None:
        self._catalog = catalog
        self._custom = custom

    def validate(self, prompt: JSON, targets: list[str] | None = None) -> ValidationResult:
        outputs: list[str] = []
        for node_id, node in prompt.items():
            if "class_type" not in node:
                msg = "Cannot execute because a node is missing the class_type property."
                return ValidationResult(
                    False, _error("invalid_prompt", msg, f"Node ID '#{node_id}'"), []
                )
            class_type = node["class_type"]
            if not self._catalog.has(class_type):
                msg = f"Cannot execute because node {class_type} does not exist."
                return ValidationResult(
                    False, _error("invalid_prompt", msg, f"Node ID '#{node_id}'"), []
                )
            if self._catalog.is_output_node(class_type) and (targets is None or node_id in targets):
                outputs.append(node_id)
        if not outputs:
            return ValidationResult(False, _error("prompt_no_outputs", "Prompt has no outputs"), [])
        return self._validate_outputs(prompt, outputs)

    def _validate_outputs(self, prompt: JSON, outputs: list[str]) -> ValidationResult:
        validated: dict[Any, Verdict] = {}
        good: list[str] = []
        failed: list[tuple[str, list[JSON]]] = []
        node_errors: JSON = {}
        for out in outputs:
            try:
                ok, reasons, _ = self._validate_node(prompt, out, validated)
            except Exception as exc:
                ok = False
                reasons = [
                    {
                        "type": "exception_during_validation",
                        "message": "Exception when validating node",
                        "details": str(exc),
                        "extra_info": {
                            "exception_type": _type_name(exc),
                            "traceback": traceback.format_tb(sys.exc_info()[2]),
                        },
                    }
                ]
                validated[out] = (False, reasons, out)
            if ok:
                good.append(out)
                continue
            failed.append((out, reasons))
            for node_id, (node_ok, node_reasons, _) in validated.items():
                if node_ok or not node_reasons:
                    continue  # invalid only because something upstream is
                if node_id not in node_errors:
                    node_errors[node_id] = {
                        "errors": node_reasons,
                        "dependent_outputs": [],
                        "class_type": prompt[node_id]["class_type"],
                    }
                node_errors[node_id]["dependent_outputs"].append(out)
        if not good:
            lines = [f"{r['message']}: {r['details']}" for _, reasons in failed for r in reasons]
            error = _error("prompt_outputs_failed_validation", "Prompt outputs failed validation")
            error["details"] = "\n".join(lines)
            return ValidationResult(False, error, [], node_errors)
        return ValidationResult(True, None, good, node_errors)

    def _validate_node(self, prompt: JSON, node_id: Any, validated: dict[Any, Verdict]) -> Verdict:
        if node_id in validated:
            return validated[node_id]
        node = prompt[node_id]
        inputs: JSON = node.setdefault("inputs", {})
        class_type = node["class_type"]
        spec = self._catalog.input_types(class_type)
        custom = self._custom.get(class_type, {})
        errors: list[JSON] = []
        valid = True
        for category in ("required", "optional"):
            for name, config in spec.get(category, {}).items():
                input_type = config[0]
                extra = config[1] if len(config) > 1 else {}
                if name not in inputs:
                    if category == "required":
                        errors.append(_missing(name))
                    continue
                info = [input_type, extra]
                value = inputs[name]
                if isinstance(value, list):
                    link_check = self._check_link(prompt, name, info, value, validated)
                    if isinstance(link_check, dict):
                        errors.append(link_check)
                    elif link_check is False:
                        valid = False
                    continue
                problem = self._check_value(inputs, name, info, value, name in custom)
                if problem is not None:
                    errors.append(problem)
        for name, check in custom.items():
            if name not in inputs or isinstance(inputs[name], list):
                continue
            result = check(inputs[name])
            if result is not True:
                details = name if result is False else f"{name} - {result}"
                errors.append(
                    {
                        "type": "custom_validation_failed",
                        "message": "Custom validation failed for node",
                        "details": details,
                        "extra_info": {"input_name": name},
                    }
                )
        verdict: Verdict = (False, errors, node_id) if errors or not valid else (True, [], node_id)
        validated[node_id] = verdict
        return verdict

    def _check_link(
        self,
        prompt: JSON,
        name: str,
        info: list[Any],
        value: list[Any],
        validated: dict[Any, Verdict],
    ) -> JSON | bool:
        if len(value) != 2:
            return {
                "type": "bad_linked_input",
                "message": "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                "details": name,
                "extra_info": {"input_name": name, "input_config": info, "received_value": value},
            }
        source_id = value[0]
        received = self._catalog.return_types(prompt[source_id]["class_type"])[value[1]]
        if not _types_match(received, info[0]):
            return {
                "type": "return_type_mismatch",
                "message": "Return type mismatch between linked nodes",
                "details": f"{name}, received_type({received}) mismatch input_type({info[0]})",
                "extra_info": {
                    "input_name": name,
                    "input_config": info,
                    "received_type": received,
                    "linked_node": value,
                },
            }
        try:
            return self._validate_node(prompt, source_id, validated)[0]
        except Exception as exc:
            validated[source_id] = (False, [_inner_exception(name, info, value, exc)], source_id)
            return False

    @staticmethod
    def _check_value(
        inputs: JSON, name: str, info: list[Any], value: Any, custom_checked: bool
    ) -> JSON | None:
        input_type, extra = info
        if isinstance(value, dict) and "__value__" in value:
            value = inputs[name] = value["__value__"]
        try:
            value = inputs[name] = _convert(input_type, value)
        except Exception as exc:
            return {
                "type": "invalid_input_type",
                "message": f"Failed to convert an input value to a {input_type} value",
                "details": f"{name}, {value}, {exc}",
                "extra_info": {
                    "input_name": name,
                    "input_config": info,
                    "received_value": value,
                    "exception_message": str(exc),
                },
            }
        if custom_checked:
            return None
        base = {"input_name": name, "input_config": info, "received_value": value}
        if "min" in extra and value < extra["min"]:
            msg = f"Value {value} smaller than min of {extra['min']}"
            return _range_error("value_smaller_than_min", msg, name, base)
        if "max" in extra and value > extra["max"]:
            msg = f"Value {value} bigger than max of {extra['max']}"
            return _range_error("value_bigger_than_max", msg, name, base)
        if isinstance(input_type, list) and value not in input_type:
            listed = str(input_type)
            if len(input_type) > 20:
                listed = f"(list of length {len(input_type)})"
                base["input_config"] = None
            return {
                "type": "value_not_in_list",
                "message": "Value not in list",
                "details": f"{name}: '{value}' not in {listed}",
                "extra_info": base,
            }
        return None


def _range_error(kind: str, message: str, name: str, extra_info: JSON) -> JSON:
    return {"type": kind, "message": message, "details": name, "extra_info": extra_info}


def _missing(name: str) -> JSON:
    return {
        "type": "required_input_missing",
        "message": "Required input is missing",
        "details": name,
        "extra_info": {"input_name": name},
    }


def _inner_exception(name: str, info: list[Any], link: list[Any], exc: Exception) -> JSON:
    return {
        "type": "exception_during_inner_validation",
        "message": "Exception when validating inner node",
        "details": str(exc),
        "extra_info": {
            "input_name": name,
            "input_config": info,
            "exception_message": str(exc),
            "exception_type": _type_name(exc),
            "traceback": traceback.format_tb(sys.exc_info()[2]),
            "linked_node": link,
        },
    }
