"""Every tool through the in-process MCP client, and bad input refused with nothing written."""

from __future__ import annotations

import pytest
from mcp import Client

from reset_mcp.app import App
from reset_mcp.clock import FakeClock
from reset_mcp.mail.memory import MemoryBackend
from tests.conftest import CHROME_UA, reset_args, token_from

EXPECTED_TOOLS = {
    "request_password_reset",
    "verify_reset_token",
    "consume_reset_token",
    "revoke_reset_tokens",
    "report_unrequested_reset",
    "check_reset_abuse",
    "send_security_alert",
    "record_contact_event",
    "get_contact",
    "list_pending_sends",
    "get_send_status",
    "get_delivery_status",
    "preview_email",
}


async def _row_counts(app: App) -> dict[str, int]:
    async with app.store.transaction() as tx:
        return {
            "sends": len(await tx.list_sends(None, 10_000)),
            "events": len(await tx.list_events(limit=10_000)),
            "outbox": sum((await tx.outbox_counts()).values()),
            "audit": len(await tx.list_audit(limit=10_000)),
        }


async def test_tool_list_has_descriptions_annotations_and_output_schemas(client: Client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == EXPECTED_TOOLS
    for tool in tools.values():
        assert tool.description and tool.annotations is not None and tool.output_schema
        for name, prop in tool.input_schema["properties"].items():
            assert prop.get("description"), f"{tool.name}.{name} has no description"
    for tool in tools.values():  # no output field could carry a token or a link
        assert not {"token", "link", "url", "reset_url"} & set(tool.output_schema["properties"])


async def test_request_verify_consume_through_tools(client: Client, backend: MemoryBackend) -> None:
    result = await client.call_tool("request_password_reset", reset_args(name="Alice"))
    assert not result.is_error
    out = result.structured_content
    assert out["status"] == "sent" and out["delivery"]["backend"] == "memory"
    assert out["delivery"]["elapsed_ms"] >= 0
    token = token_from(backend.sent[0])
    assert token not in str(result)  # never returned to the agent

    verified = (await client.call_tool("verify_reset_token", {"token": token})).structured_content
    assert verified["valid"] is True and verified["user_id"] == "u-1" and verified["email"] == "alice@example.com"

    consumed = (await client.call_tool("consume_reset_token", {"token": token})).structured_content
    assert consumed == {**consumed, "consumed": True, "user_id": "u-1"}
    again = (await client.call_tool("consume_reset_token", {"token": token})).structured_content
    assert again["consumed"] is False and again["reason"]
    # The "password changed" notice followed the consumption.
    assert [m.kind for m in backend.sent] == ["password_reset", "password_changed"]


async def test_email_content_and_headers(client: Client, backend: MemoryBackend) -> None:
    await client.call_tool("request_password_reset", reset_args(name="Alice", location="Berlin, Germany"))
    mail = backend.sent[0]
    # 198.51.100.7 is a documentation address: no place is shown for it, whatever the caller claims.
    for fact in ("198.51.100.7", "Chrome 131 on Windows 10", "an address we cannot locate", "15 minutes", "Hi Alice"):
        assert fact in mail.text and fact in mail.html
    assert "Berlin" not in mail.text
    backend.sent.clear()
    await client.call_tool("request_password_reset", reset_args(ip="81.2.69.160", location="Berlin, Germany"))
    assert "Berlin, Germany" in backend.sent[0].text and "Berlin, Germany" in backend.sent[0].html
    assert mail.to == "alice@example.com" and mail.from_address == "auth@acme.test"
    assert mail.message_id.startswith("<msg_") and mail.message_id.endswith("@acme.test>")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (reset_args(email="not-an-email"), "email"),
        (reset_args(ip="999.1.1.1"), "ip"),
        (reset_args(name="Alice\r\nBcc: evil@example.com"), "name"),
        (reset_args(name="x" * 10_000_000), "name"),
        (reset_args(user_agent="y" * 10_000_000), "user_agent"),
        (reset_args(user_id=""), "user_id"),
    ],
)
async def test_bad_input_is_a_clear_tool_error_and_writes_nothing(
    client: Client, app: App, backend: MemoryBackend, args: dict[str, object], message: str
) -> None:
    before = await _row_counts(app)
    result = await client.call_tool("request_password_reset", args)
    assert result.is_error
    text = result.content[0].text
    assert message in text and text.strip() != "Error executing tool request_password_reset"
    assert len(text) < 2000  # the 10 MB input is not echoed back
    assert await _row_counts(app) == before
    assert backend.sent == []


async def test_garbage_tokens_answer_invalid_without_error(client: Client) -> None:
    for token in ("", "abc", "a.b.c", "x" * 5000):
        result = await client.call_tool("verify_reset_token", {"token": token})
        if len(token) > 4096:
            assert result.is_error  # schema cap
            continue
        assert not result.is_error
        assert result.structured_content["valid"] is False


async def test_contact_tools(client: Client) -> None:
    await client.call_tool("request_password_reset", reset_args())
    rec = await client.call_tool(
        "record_contact_event", {"email": "Alice@Example.com", "event_type": "login_failed", "metadata": {"n": 3}}
    )
    assert not rec.is_error and rec.structured_content["email"] == "alice@example.com"
    contact = (await client.call_tool("get_contact", {"email": "alice@example.com"})).structured_content
    assert contact["last_reset_ip"] == "198.51.100.7"
    assert "Chrome 131 on Windows 10" in contact["devices"]
    assert {e["event_type"] for e in contact["recent_events"]} >= {"reset_requested", "login_failed"}
    abuse = (await client.call_tool("check_reset_abuse", {"email": "alice@example.com"})).structured_content
    assert abuse["attempts"] == 1 and abuse["risk"] == "low" and abuse["recommended_action"] == "allow"
    forged = await client.call_tool(
        "record_contact_event", {"email": "alice@example.com", "event_type": "reset_requested"}
    )
    assert forged.is_error and "recorded by reset-mcp itself" in forged.content[0].text


async def test_status_tools_and_preview(client: Client, clock: FakeClock) -> None:
    out = (await client.call_tool("request_password_reset", reset_args())).structured_content
    status = (await client.call_tool("get_send_status", {"request_id": out["request_id"]})).structured_content
    assert status["status"] == "sent" and status["deliveries"][0]["status"] == "sent"
    delivery = (await client.call_tool("get_delivery_status", {"request_id": out["request_id"]})).structured_content
    assert delivery["deliveries"][0]["attempts"] == 1
    missing = await client.call_tool("get_send_status", {"request_id": "req_nope"})
    assert missing.is_error and "no request" in missing.content[0].text
    pending = (await client.call_tool("list_pending_sends", {})).structured_content
    assert pending == {"count": 0, "pending": [], "next_cursor": None}
    preview = (
        await client.call_tool("preview_email", {"kind": "password_reset", "locale": "de-AT"})
    ).structured_content
    assert preview["locale"] == "de" and preview["subject"] and "<html" in preview["html"]


async def test_revoke_and_report_tools(client: Client, backend: MemoryBackend) -> None:
    await client.call_tool("request_password_reset", reset_args())
    token = token_from(backend.sent[0])
    report = (await client.call_tool("report_unrequested_reset", {"token": token})).structured_content
    assert report["reported"] is True and report["revoked"] is True
    assert (await client.call_tool("verify_reset_token", {"token": token})).structured_content["valid"] is False
    await client.call_tool("request_password_reset", reset_args(user_agent=CHROME_UA))
    revoked = (
        await client.call_tool("revoke_reset_tokens", {"user_id": "u-1", "reason": "support"})
    ).structured_content
    assert revoked["revoked"] == 1
    neither = await client.call_tool("revoke_reset_tokens", {"reason": "x"})
    assert neither.is_error and "email or user_id" in neither.content[0].text
