"""Circuit breakers, queue depths per priority lane, the oldest waiting delivery, dead letters
and (with --workers) which workers answer on each queue."""

import json

from django.core.management.base import BaseCommand

from notifications.ops import dashboard


class Command(BaseCommand):
    help = "Show circuit states, queue depths and dead letters (add --workers to ping workers, --json for machines)."

    def add_arguments(self, parser):
        parser.add_argument("--workers", action="store_true", help="Ask every worker for its queues (waits ~1 s).")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, workers, **options):
        figures = {
            "circuits": dashboard.circuit_states(),
            "queues": dashboard.queue_depths(),
            "oldest_waiting_seconds": dashboard.oldest_waiting(),
            "dead_letters": dashboard.dead_letter_count(),
        }
        if workers:
            figures["workers"] = dashboard.workers_per_queue()
        if options["json"]:
            self.stdout.write(json.dumps(figures, indent=2, sort_keys=True))
            return
        self.stdout.write("circuit breakers:")
        for provider, state in figures["circuits"].items():
            self.stdout.write(f"  {provider:<12} {state}")
        self.stdout.write("queues (messages waiting per lane):")
        for queue, lanes in figures["queues"].items():
            per_lane = "  ".join(f"{lane} {count}" for lane, count in lanes.items())
            oldest = figures["oldest_waiting_seconds"].get(queue)
            note = f"  oldest queued delivery {oldest:.0f}s" if oldest is not None else ""
            listed = f"  workers: {', '.join(figures['workers'].get(queue, [])) or 'NONE'}" if workers else ""
            self.stdout.write(f"  {queue:<12} {per_lane}{note}{listed}")
        self.stdout.write(f"dead letters: {figures['dead_letters']}")
