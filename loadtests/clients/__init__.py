"""asyncio protocol clients (SMTP, DNS, ...). They import nothing from Locust: each session
returns its timed steps as `Step` records, which the Locust users turn into request events."""

from loadtests.clients.steps import Step, StepRecorder

__all__ = ["Step", "StepRecorder"]
