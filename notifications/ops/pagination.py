"""Admin list pages that stay fast on tables of tens of millions of rows: no COUNT(*) of the
whole filtered table on every page. Small results are counted exactly; large ones are
estimated from Postgres' planner (EXPLAIN), which costs no more than planning the query."""

import json

from django.conf import settings
from django.core.paginator import Paginator
from django.db import connections
from django.utils.functional import cached_property


def planner_estimate(queryset):
    """The planner's row estimate for the queryset (ordering dropped: it does not change the count)."""
    queryset = queryset.order_by()
    sql, params = queryset.query.sql_with_params()
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


class EstimatedCountPaginator(Paginator):
    """`count` is exact up to ADMIN_EXACT_COUNT_LIMIT rows, else the planner's estimate."""

    estimated = False

    @cached_property
    def count(self):
        queryset = self.object_list
        if not hasattr(queryset, "query"):
            return len(queryset)
        estimate = planner_estimate(queryset)
        if estimate <= settings.ADMIN_EXACT_COUNT_LIMIT:
            # Cheap enough to be exact; LIMIT keeps a bad estimate from turning into a full scan.
            exact = queryset.order_by()[: settings.ADMIN_EXACT_COUNT_LIMIT + 1].count()
            if exact <= settings.ADMIN_EXACT_COUNT_LIMIT:
                return exact
        self.estimated = True
        return max(estimate, settings.ADMIN_EXACT_COUNT_LIMIT + 1)
