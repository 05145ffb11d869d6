"""Validates Drover's deployment JSON against the official SDK's pydantic models.

argv[1]: a JSON file {"deployments": [...], "runs": [...]}. Prints one line per object and
exits non-zero on the first that does not validate, or that validates but loses fields.
"""
import json
import sys

from anthropic.types.beta import BetaManagedAgentsDeployment, BetaManagedAgentsDeploymentRun


def check(model, value):
    parsed = model.model_validate(value)
    dumped = parsed.model_dump(mode="json", exclude_unset=True)
    missing = sorted(set(value) - set(dumped))
    if missing:
        raise SystemExit(f"{model.__name__}: fields the SDK does not know: {missing}")
    print(f"{model.__name__} {parsed.id} ok")


def main():
    with open(sys.argv[1]) as handle:
        data = json.load(handle)
    for value in data["deployments"]:
        check(BetaManagedAgentsDeployment, value)
    for value in data["runs"]:
        check(BetaManagedAgentsDeploymentRun, value)


if __name__ == "__main__":
    main()
