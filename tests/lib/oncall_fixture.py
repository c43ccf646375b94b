"""The on-call people and roles the escalation tests and the demo configure on every node."""

ALICE, BOB, CAROL, DAVE = "+32470100001", "+32470100002", "+32470100003", "+32470100004"


def oncall_config(step_timeout: int) -> str:
    """Config sections: contacts alice, bob, carol, dave; roles primary (alice), secondary (bob),
    management (carol); escalation through the three roles."""
    contacts = "".join(f"[contact {name}]\nnumber = {number}\n\n" for name, number in
                       (("alice", ALICE), ("bob", BOB), ("carol", CAROL), ("dave", DAVE)))
    roles = "".join(f"[role {role}]\ncontacts = {who}\n\n" for role, who in
                    (("primary", "alice"), ("secondary", "bob"), ("management", "carol")))
    return (f"\n{contacts}{roles}[escalation]\nsteps = primary, secondary, management\n"
            f"step_timeout = {step_timeout}\n")
