"""Microsoft's own clients against the axum-obo Entra stand-in: Entra Agent ID.

Reads the stand-in's JSON line (see testing/examples/agents_interop.rs) from the
file named by argv[1]; HTTPS_PROXY and REQUESTS_CA_BUNDLE are set by run.sh.
Runs, with MSAL Python (msal >= 1.39) and the Microsoft 365 Agents SDK
(microsoft-agents-authentication-msal 1.9.0), unmodified:

- T1: the blueprint's acquire_token_for_client(fmi_path=agent);
- the agent's autonomous token (T1 as client assertion, client_credentials);
- T2 and the agent user's token by user_fic (by object id and by UPN);
- agent On-Behalf-Of (the user's token to the blueprint as assertion);
- the Agents SDK's three legs (get_agentic_application_token,
  get_agentic_instance_token, get_agentic_user_token);
- the refusals: T1 for an agent of another blueprint, T2 as client assertion,
  a user who is not an agent user.
Exits non-zero on the first failed check.
"""

import asyncio
import base64
import json
import sys

import msal
from microsoft_agents.authentication.msal import MsalAuth
from microsoft_agents.hosting.core import AgentAuthConfiguration, AuthTypes

EXCHANGE = "api://AzureADTokenExchange/.default"
GRAPH_DEFAULT = "https://graph.microsoft.com/.default"
USER_READ = "https://graph.microsoft.com/User.Read"
checks = 0


def claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def check(condition, what, detail=None):
    global checks
    if not condition:
        print("FAIL:", what, "" if detail is None else detail)
        sys.exit(1)
    checks += 1
    print("ok:", what)


def token_of(result, what):
    check("access_token" in result, what, {k: v for k, v in result.items() if k != "access_token"})
    return result["access_token"]


def main():
    with open(sys.argv[1]) as f:
        s = json.loads(f.readline())
    authority, tenant, blueprint, agent = s["authority"], s["tenant"], s["blueprint"], s["agent"]

    # --- MSAL Python, leg by leg ---
    bp = msal.ConfidentialClientApplication(blueprint, client_credential=s["secret"], authority=authority)
    t1 = token_of(bp.acquire_token_for_client([EXCHANGE], fmi_path=agent), "MSAL: T1 with fmi_path")
    check(claims(t1)["sub"] == agent, "T1 is for the agent", claims(t1))

    def agent_app(assertion):
        return msal.ConfidentialClientApplication(
            agent, client_credential={"client_assertion": assertion}, authority=authority)

    app_token = token_of(agent_app(t1).acquire_token_for_client([GRAPH_DEFAULT]), "MSAL: autonomous agent token")
    c = claims(app_token)
    check(c["appid"] == agent and c["idtyp"] == "app" and c["xms_par_app_azp"] == blueprint,
          "autonomous token: the agent's, app-only, with its blueprint", c)

    t2 = token_of(agent_app(t1).acquire_token_for_client([EXCHANGE]), "MSAL: T2 (instance token)")
    check(claims(t2)["xms_par_app_azp"] == blueprint, "T2 names the blueprint")

    by_oid = agent_app(t1).acquire_token_by_user_federated_identity_credential(
        [USER_READ], t2, user_object_id=s["agent_user_oid"])
    c = claims(token_of(by_oid, "MSAL: user_fic by object id"))
    check(c["oid"] == s["agent_user_oid"] and c["appid"] == agent and "13" in c.get("xms_sub_fct", "").split(),
          "agent user token: the agent user, issued to the agent", c)
    by_upn = agent_app(t1).acquire_token_by_user_federated_identity_credential(
        [USER_READ], t2, username=s["agent_user_upn"])
    check(claims(token_of(by_upn, "MSAL: user_fic by UPN"))["oid"] == s["agent_user_oid"],
          "user_fic by UPN names the same agent user")

    obo = agent_app(t1).acquire_token_on_behalf_of(s["user_token"], [USER_READ])
    c = claims(token_of(obo, "MSAL: agent On-Behalf-Of"))
    check(c["oid"] == claims(s["user_token"])["oid"] and c["appid"] == agent and c["xms_par_app_azp"] == blueprint,
          "agent OBO token: the human caller, issued to the agent", c)

    # --- refusals ---
    r = bp.acquire_token_for_client([EXCHANGE], fmi_path=s["stranger_agent"])
    check(r.get("error") == "unauthorized_client", "T1 refused for an agent of another blueprint", r.get("error"))
    r = agent_app(t2).acquire_token_for_client([GRAPH_DEFAULT])
    check(r.get("error") == "invalid_client", "T2 refused as client assertion", r.get("error"))
    r = agent_app(t1).acquire_token_by_user_federated_identity_credential(
        [USER_READ], t1, user_object_id=s["agent_user_oid"])
    check(r.get("error") == "invalid_grant", "T1 refused as user_fic credential", r.get("error"))
    r = agent_app(t1).acquire_token_by_user_federated_identity_credential(
        [USER_READ], t2, username="nobody@contoso.example")
    check(r.get("error") == "invalid_grant", "a user who is not an agent user is refused", r.get("error"))

    # --- the Microsoft 365 Agents SDK ---
    auth = MsalAuth(AgentAuthConfiguration(
        auth_type=AuthTypes.client_secret, client_id=blueprint, tenant_id=tenant,
        client_secret=s["secret"], authority=authority))

    async def sdk():
        t1 = await auth.get_agentic_application_token(tenant, agent)
        check(t1 and claims(t1)["sub"] == agent, "Agents SDK: agentic application token (T1)")
        instance, t1_again = await auth.get_agentic_instance_token(tenant, agent)
        check(claims(instance)["xms_par_app_azp"] == blueprint and claims(t1_again)["sub"] == agent,
              "Agents SDK: agentic instance token (T2)")
        user = await auth.get_agentic_user_token(tenant, agent, s["agent_user_oid"], [USER_READ])
        c = claims(user) if user else {}
        check(c.get("oid") == s["agent_user_oid"] and c.get("appid") == agent,
              "Agents SDK: agentic user token", c)

    asyncio.run(sdk())
    print(f"interop/agents: {checks} checks passed")


if __name__ == "__main__":
    main()
