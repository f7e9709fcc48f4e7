"""The collaborators every router reaches through `request.app.state.gw` (made in app.py)."""

from __future__ import annotations

from dataclasses import dataclass

from loom_common.read_replica import Reads
from loom_gateway.clients.inference import InferenceClient
from loom_gateway.clients.rag import RagClient
from loom_gateway.clients.tools import ToolsClient
from loom_gateway.domain.execution import Execution
from loom_gateway.domain.knowledge_metadata import KnowledgeMetadata
from loom_gateway.domain.trigger_runs import TriggerRuns
from loom_gateway.settings import GatewaySettings
from loom_gateway.store.accounts import Accounts
from loom_gateway.store.annotations import Annotations
from loom_gateway.store.apps import Apps
from loom_gateway.store.audit import AuditLog
from loom_gateway.store.conversations import Conversations
from loom_gateway.store.files import Files
from loom_gateway.store.knowledge_tags import KnowledgeTags
from loom_gateway.store.limits import Limits
from loom_gateway.store.model_endpoints import ModelEndpoints
from loom_gateway.store.schedules import Schedules
from loom_gateway.store.webhooks import Webhooks
from loom_gateway.store.workspace_settings import WorkspaceSettings


@dataclass
class Gateway:
    settings: GatewaySettings
    accounts: Accounts
    apps: Apps
    conversations: Conversations
    execution: Execution
    files: Files
    limits: Limits
    audit: AuditLog
    inference: InferenceClient
    rag: RagClient
    model_endpoints: ModelEndpoints
    workspace_settings: WorkspaceSettings
    # Where read-heavy routes read (the replica while it keeps up); writes mark their workspace.
    reads: Reads
    # The tools service's registry (the console's tool routes); None where none is wired.
    tools: ToolsClient | None = None
    # An app's annotations and the match of chat queries against them (annotation reply).
    annotations: Annotations | None = None
    # Knowledge tags and metadata fields (the gateway's side of datasets kept in rag).
    knowledge_tags: KnowledgeTags | None = None
    knowledge_metadata: KnowledgeMetadata | None = None
    # Triggers of workflow apps (schedules, webhooks) and the runs they start.
    schedules: Schedules | None = None
    webhooks: Webhooks | None = None
    triggers: TriggerRuns | None = None
