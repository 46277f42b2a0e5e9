"""Microsoft's sidecar adapter for the Agents SDK
(microsoft-agents-authentication-entra-auth-sidecar, from PyPI, unmodified)
against axum-obo-sidecar in embedded mode. Argument: the demo file the sidecar
wrote (AXUM_OBO_SIDECAR_DEMO_FILE)."""

import asyncio
import base64
import json
import sys

from microsoft_agents.authentication.entra_auth_sidecar import (
    SidecarAuth,
    SidecarAuthError,
)

GRAPH_DEFAULT = "https://graph.microsoft.com/.default"


def claims(token: str) -> dict:
    payload = token.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))


def app_of(c: dict) -> str:
    return c.get("appid") or c.get("azp")


async def main(demo: dict) -> None:
    auth = SidecarAuth(
        {
            "SIDECAR_BASE_URL": demo["url"],
            "SERVICE_NAME": "default",
            "SCOPES": [GRAPH_DEFAULT],
            "RETRY_COUNT": 0,
        }
    )
    tenant, agent = demo["tenant"], demo["agent"]
    try:
        assert await auth.is_healthy(), "is_healthy"
        print("ok is_healthy")

        token = await auth.get_access_token("https://graph.microsoft.com", [GRAPH_DEFAULT])
        c = claims(token)
        assert "scp" not in c and c["tid"] == tenant, c
        print("ok get_access_token: the app's own token, app", app_of(c))

        token, again = await auth.get_agentic_instance_token(tenant, agent)
        c = claims(token)
        assert token == again and app_of(c) == agent and "scp" not in c, c
        print("ok get_agentic_instance_token: the agent's own token")

        token = await auth.get_agentic_user_token(tenant, agent, demo["agentUserOid"], ["User.Read"])
        c = claims(token)
        assert c["oid"] == demo["agentUserOid"] and app_of(c) == agent, c
        print("ok get_agentic_user_token by object id")

        token = await auth.get_agentic_user_token(tenant, agent, demo["agentUserUpn"], ["User.Read"])
        c = claims(token)
        assert c["oid"] == demo["agentUserOid"] and app_of(c) == agent, c
        print("ok get_agentic_user_token by UPN")

        try:
            await auth.get_agentic_user_token(tenant, agent, "nobody@contoso.example", ["User.Read"])
        except SidecarAuthError as e:
            assert "eyJ" not in str(e), "a token in the error"
            print("ok a user who is not an agent user is refused:", type(e).__name__)
        else:
            raise AssertionError("a user who is not an agent user got a token")
    finally:
        await auth.close()


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        asyncio.run(main(json.load(f)))
    print("interop/sidecar: all checks passed")
