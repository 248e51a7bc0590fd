"""The Control gRPC servicer: the operator's API (swarmctl), one thin method per RPC.

Manager layer. Each RPC delegates to the handler object of its resource (services.py, nodes.py,
tasks.py, cluster.py, secrets.py, configs.py, networks.py). Handlers raise swarmd.errors; the
server's `swarmd.rpc.status.StatusInterceptor` turns them into gRPC status codes, so nothing here
touches the context. Objects are addressed by exact id; swarmctl resolves names and id prefixes
itself through the List filters.
"""

from __future__ import annotations

from typing import Any

from grpc import aio

from swarmd.api import control_pb2, control_pb2_grpc
from swarmd.clock import Clock, SystemClock
from swarmd.manager.controlapi.cluster import Clusters, TokenFactory
from swarmd.manager.controlapi.configs import Configs
from swarmd.manager.controlapi.networks import Networks
from swarmd.manager.controlapi.nodes import Nodes, RaftMembership
from swarmd.manager.controlapi.secrets import Secrets
from swarmd.manager.controlapi.services import Services
from swarmd.manager.controlapi.tasks import Tasks
from swarmd.manager.store import MemoryStore

_Context = aio.ServicerContext[Any, Any]


class ControlServicer(control_pb2_grpc.ControlServicer):
    """Serves the Control API from a store (the leader's; followers proxy to it).

    Args:
        store: the manager's store; reads see committed state, writes go through Raft.
        clock: source of the timestamps written into revisions and task statuses.
        token_factory: makes a join token from the root CA certificate (PEM) when
            UpdateCluster rotates one (swarmd.ca.tokens.new_join_token); without it
            rotation fails with FAILED_PRECONDITION.
        membership: the raft membership, so node demotion and removal keep quorum.
    """

    def __init__(
        self,
        store: MemoryStore,
        *,
        clock: Clock | None = None,
        token_factory: TokenFactory | None = None,
        membership: RaftMembership | None = None,
    ) -> None:
        clock = clock or SystemClock()
        self._nodes = Nodes(store, clock, membership)
        self._tasks = Tasks(store)
        self._services = Services(store, clock)
        self._clusters = Clusters(store, token_factory)
        self._secrets = Secrets(store)
        self._configs = Configs(store)
        self._networks = Networks(store)

    async def GetNode(  # noqa: N802 - gRPC method name
        self, request: control_pb2.GetNodeRequest, context: _Context
    ) -> control_pb2.GetNodeResponse:
        return control_pb2.GetNodeResponse(node=self._nodes.get(request))

    async def ListNodes(  # noqa: N802 - gRPC method name
        self, request: control_pb2.ListNodesRequest, context: _Context
    ) -> control_pb2.ListNodesResponse:
        return control_pb2.ListNodesResponse(nodes=self._nodes.list(request))

    async def UpdateNode(  # noqa: N802 - gRPC method name
        self, request: control_pb2.UpdateNodeRequest, context: _Context
    ) -> control_pb2.UpdateNodeResponse:
        return control_pb2.UpdateNodeResponse(node=await self._nodes.update(request))

    async def RemoveNode(  # noqa: N802 - gRPC method name
        self, request: control_pb2.RemoveNodeRequest, context: _Context
    ) -> control_pb2.RemoveNodeResponse:
        await self._nodes.remove(request)
        return control_pb2.RemoveNodeResponse()

    async def GetTask(  # noqa: N802 - gRPC method name
        self, request: control_pb2.GetTaskRequest, context: _Context
    ) -> control_pb2.GetTaskResponse:
        return control_pb2.GetTaskResponse(task=self._tasks.get(request))

    async def ListTasks(  # noqa: N802 - gRPC method name
        self, request: control_pb2.ListTasksRequest, context: _Context
    ) -> control_pb2.ListTasksResponse:
        return control_pb2.ListTasksResponse(tasks=self._tasks.list(request))

    async def RemoveTask(  # noqa: N802 - gRPC method name
        self, request: control_pb2.RemoveTaskRequest, context: _Context
    ) -> control_pb2.RemoveTaskResponse:
        await self._tasks.remove(request)
        return control_pb2.RemoveTaskResponse()

    async def GetService(  # noqa: N802 - gRPC method name
        self, request: control_pb2.GetServiceRequest, context: _Context
    ) -> control_pb2.GetServiceResponse:
        return control_pb2.GetServiceResponse(service=self._services.get(request))

    async def ListServices(  # noqa: N802 - gRPC method name
        self, request: control_pb2.ListServicesRequest, context: _Context
    ) -> control_pb2.ListServicesResponse:
        return control_pb2.ListServicesResponse(services=self._services.list(request))

    async def CreateService(  # noqa: N802 - gRPC method name
        self, request: control_pb2.CreateServiceRequest, context: _Context
    ) -> control_pb2.CreateServiceResponse:
        return control_pb2.CreateServiceResponse(service=await self._services.create(request))

    async def UpdateService(  # noqa: N802 - gRPC method name
        self, request: control_pb2.UpdateServiceRequest, context: _Context
    ) -> control_pb2.UpdateServiceResponse:
        return control_pb2.UpdateServiceResponse(service=await self._services.update(request))

    async def RemoveService(  # noqa: N802 - gRPC method name
        self, request: control_pb2.RemoveServiceRequest, context: _Context
    ) -> control_pb2.RemoveServiceResponse:
        await self._services.remove(request)
        return control_pb2.RemoveServiceResponse()

    async def ListServiceStatuses(  # noqa: N802 - gRPC method name
        self, request: control_pb2.ListServiceStatusesRequest, context: _Context
    ) -> control_pb2.ListServiceStatusesResponse:
        return control_pb2.ListServiceStatusesResponse(statuses=self._services.statuses(request))

    async def GetCluster(  # noqa: N802 - gRPC method name
        self, request: control_pb2.GetClusterRequest, context: _Context
    ) -> control_pb2.GetClusterResponse:
        return control_pb2.GetClusterResponse(cluster=self._clusters.get(request))

    async def ListClusters(  # noqa: N802 - gRPC method name
        self, request: control_pb2.ListClustersRequest, context: _Context
    ) -> control_pb2.ListClustersResponse:
        return control_pb2.ListClustersResponse(clusters=self._clusters.list(request))

    async def UpdateCluster(  # noqa: N802 - gRPC method name
        self, request: control_pb2.UpdateClusterRequest, context: _Context
    ) -> control_pb2.UpdateClusterResponse:
        return control_pb2.UpdateClusterResponse(cluster=await self._clusters.update(request))

    async def GetSecret(  # noqa: N802 - gRPC method name
        self, request: control_pb2.GetSecretRequest, context: _Context
    ) -> control_pb2.GetSecretResponse:
        return control_pb2.GetSecretResponse(secret=self._secrets.get(request))

    async def ListSecrets(  # noqa: N802 - gRPC method name
        self, request: control_pb2.ListSecretsRequest, context: _Context
    ) -> control_pb2.ListSecretsResponse:
        return control_pb2.ListSecretsResponse(secrets=self._secrets.list(request))

    async def CreateSecret(  # noqa: N802 - gRPC method name
        self, request: control_pb2.CreateSecretRequest, context: _Context
    ) -> control_pb2.CreateSecretResponse:
        return control_pb2.CreateSecretResponse(secret=await self._secrets.create(request))

    async def RemoveSecret(  # noqa: N802 - gRPC method name
        self, request: control_pb2.RemoveSecretRequest, context: _Context
    ) -> control_pb2.RemoveSecretResponse:
        await self._secrets.remove(request)
        return control_pb2.RemoveSecretResponse()

    async def GetConfig(  # noqa: N802 - gRPC method name
        self, request: control_pb2.GetConfigRequest, context: _Context
    ) -> control_pb2.GetConfigResponse:
        return control_pb2.GetConfigResponse(config=self._configs.get(request))

    async def ListConfigs(  # noqa: N802 - gRPC method name
        self, request: control_pb2.ListConfigsRequest, context: _Context
    ) -> control_pb2.ListConfigsResponse:
        return control_pb2.ListConfigsResponse(configs=self._configs.list(request))

    async def CreateConfig(  # noqa: N802 - gRPC method name
        self, request: control_pb2.CreateConfigRequest, context: _Context
    ) -> control_pb2.CreateConfigResponse:
        return control_pb2.CreateConfigResponse(config=await self._configs.create(request))

    async def RemoveConfig(  # noqa: N802 - gRPC method name
        self, request: control_pb2.RemoveConfigRequest, context: _Context
    ) -> control_pb2.RemoveConfigResponse:
        await self._configs.remove(request)
        return control_pb2.RemoveConfigResponse()

    async def GetNetwork(  # noqa: N802 - gRPC method name
        self, request: control_pb2.GetNetworkRequest, context: _Context
    ) -> control_pb2.GetNetworkResponse:
        return control_pb2.GetNetworkResponse(network=self._networks.get(request))

    async def ListNetworks(  # noqa: N802 - gRPC method name
        self, request: control_pb2.ListNetworksRequest, context: _Context
    ) -> control_pb2.ListNetworksResponse:
        return control_pb2.ListNetworksResponse(networks=self._networks.list(request))

    async def CreateNetwork(  # noqa: N802 - gRPC method name
        self, request: control_pb2.CreateNetworkRequest, context: _Context
    ) -> control_pb2.CreateNetworkResponse:
        return control_pb2.CreateNetworkResponse(network=await self._networks.create(request))

    async def RemoveNetwork(  # noqa: N802 - gRPC method name
        self, request: control_pb2.RemoveNetworkRequest, context: _Context
    ) -> control_pb2.RemoveNetworkResponse:
        await self._networks.remove(request)
        return control_pb2.RemoveNetworkResponse()


__all__ = ["ControlServicer"]
