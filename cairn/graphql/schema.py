"""The one GraphQL schema: every part's Query, Mutation and Subscription merged."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.tools import merge_types

from cairn.graphql.admin import AdminMutation, AdminQuery
from cairn.graphql.analytics import AnalyticsQuery
from cairn.graphql.autotest import AutoTestMutation, AutoTestQuery, AutoTestSubscription
from cairn.graphql.errors import ErrorCodes
from cairn.graphql.governance import GovernanceMutation, GovernanceQuery, GovernanceSubscription
from cairn.graphql.health import HealthMutation, HealthQuery, HealthSubscription
from cairn.graphql.ingest import IngestMutation, IngestQuery
from cairn.graphql.limits import extensions as limits
from cairn.graphql.webhooks import WebhookMutation, WebhookQuery

Query = merge_types("Query", (GovernanceQuery, AdminQuery, AnalyticsQuery, IngestQuery,
                              HealthQuery, WebhookQuery, AutoTestQuery))
Mutation = merge_types("Mutation", (GovernanceMutation, AdminMutation, IngestMutation,
                                    HealthMutation, WebhookMutation, AutoTestMutation))
Subscription = merge_types("Subscription", (GovernanceSubscription, HealthSubscription,
                                            AutoTestSubscription))


class CairnSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        # Expected errors (auth, validation, domain) are answers, not incidents: ErrorCodes
        # logs the unexpected ones, once each, with their traceback.
        return None


schema = CairnSchema(query=Query, mutation=Mutation, subscription=Subscription,
                     extensions=[ErrorCodes, *limits()])
