"""Ollama's API types (api.Message, api.ToolCall, api.Tool) as template Structs, built from API-shaped dicts."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from ember.gotemplate.values import Struct


def message_struct(message: Mapping[str, Any]) -> Struct:
    """An API message as Ollama's api.Message, for templates."""
    calls = [tool_call_struct(c) for c in message.get("tool_calls") or ()]
    fields = {
        "Role": message.get("role", ""),
        "Content": message.get("content") or "",
        "Thinking": message.get("thinking") or "",
        "Images": list(message.get("images") or ()),
        "ToolCalls": calls,
        "ToolName": message.get("tool_name") or "",
        "ToolCallID": message.get("tool_call_id") or "",
    }
    shown: dict[str, Any] = {"role": fields["Role"], "content": fields["Content"]}
    optional = (("thinking", "Thinking"), ("images", "Images"), ("tool_calls", "ToolCalls"),
                ("tool_name", "ToolName"), ("tool_call_id", "ToolCallID"))
    shown.update({key: fields[name] for key, name in optional if fields[name]})
    return Struct(fields, shown)


def tool_call_struct(call: Mapping[str, Any]) -> Struct:
    function = call.get("function") or {}
    arguments = function.get("arguments") or {}
    if isinstance(arguments, str):  # OpenAI-style clients send arguments as a JSON string
        with contextlib.suppress(json.JSONDecodeError):
            arguments = json.loads(arguments)
    index = function.get("index", 0)
    inner = Struct({"Index": index, "Name": function.get("name", ""), "Arguments": arguments},
                   {**({"index": index} if index else {}), "name": function.get("name", ""),
                    "arguments": arguments})
    shown = {**({"id": call["id"]} if call.get("id") else {}), "function": inner}
    return Struct({"ID": call.get("id", ""), "Function": inner}, shown)


def tool_struct(tool: Mapping[str, Any]) -> Struct:
    """An API tool as Ollama's api.Tool; its JSON has the field order Ollama's Go structs marshal with."""
    function = tool.get("function") or {}
    parameters = _parameters_struct(function.get("parameters") or {})
    inner = Struct(
        {"Name": function.get("name", ""), "Description": function.get("description", ""),
         "Parameters": parameters},
        {"name": function.get("name", ""), "description": function.get("description", ""),
         "parameters": parameters},
    )
    shown: dict[str, Any] = {"type": tool.get("type", "function")}
    if tool.get("items") is not None:
        shown["items"] = tool["items"]
    shown["function"] = inner
    return Struct({"Type": shown["type"], "Items": tool.get("items"), "Function": inner}, shown)


def _parameters_struct(parameters: Mapping[str, Any]) -> Struct:
    properties = {name: _property_struct(p) for name, p in sorted((parameters.get("properties") or {}).items())}
    fields = {"Type": parameters.get("type", "object"), "Defs": parameters.get("$defs"),
              "Items": parameters.get("items"), "Required": list(parameters.get("required") or ()),
              "Properties": properties}
    shown: dict[str, Any] = {"type": fields["Type"]}
    for key, name in (("$defs", "Defs"), ("items", "Items"), ("required", "Required")):
        if fields[name]:
            shown[key] = fields[name]
    shown["properties"] = properties
    return Struct(fields, shown)


def _property_struct(prop: Mapping[str, Any]) -> Struct:
    fields = {"Type": prop.get("type", ""), "Items": prop.get("items"),
              "Description": prop.get("description", ""), "Enum": list(prop.get("enum") or ())}
    shown = {key: fields[name] for key, name in (("type", "Type"), ("items", "Items"),
                                                 ("description", "Description"), ("enum", "Enum"))
             if fields[name]}
    return Struct(fields, shown)
