using System.Text.Json;
using Google.Protobuf;
using Ray.Rpc;
using InfoType = Ray.Rpc.ClusterInfoType.Types.TypeEnum;

namespace RayClient.Session;

/// <summary>
/// The cluster and actor-control requests of a session and the reading of their answers
/// (ray:python/ray/util/client/worker.py get_cluster_info, terminate_actor, terminate_task,
/// list_named_actors). <see cref="RaySession"/> validates arguments around it.
/// </summary>
internal sealed class ClusterRequests
{
    private readonly RayConnection _connection;

    public ClusterRequests(RayConnection connection)
    {
        _connection = connection;
    }

    /// <summary>The cluster's nodes (Ray's <c>ray.nodes()</c>).</summary>
    public async Task<IReadOnlyList<RayNode>> GetNodesAsync(CancellationToken cancellationToken)
    {
        var response = await ClusterInfoAsync(InfoType.Nodes, cancellationToken).ConfigureAwait(false);
        using var document = JsonDocument.Parse(response.Json);
        var nodes = new List<RayNode>();
        foreach (var node in document.RootElement.EnumerateArray())
        {
            var resources = new Dictionary<string, double>(StringComparer.Ordinal);
            if (node.TryGetProperty("Resources", out var res) && res.ValueKind == JsonValueKind.Object)
            {
                foreach (var property in res.EnumerateObject())
                {
                    if (property.Value.ValueKind == JsonValueKind.Number)
                    {
                        resources[property.Name] = property.Value.GetDouble();
                    }
                }
            }

            nodes.Add(new RayNode(
                GetString(node, "NodeID") ?? string.Empty,
                node.TryGetProperty("Alive", out var alive) && alive.ValueKind == JsonValueKind.True,
                GetString(node, "NodeManagerAddress") ?? string.Empty,
                GetString(node, "NodeManagerHostname") ?? string.Empty,
                resources,
                node.GetRawText()));
        }

        return nodes;
    }

    /// <summary>Total resources (<see cref="InfoType.ClusterResources"/>) or those not in use (<see cref="InfoType.AvailableResources"/>).</summary>
    public async Task<IReadOnlyDictionary<string, double>> GetResourcesAsync(bool available, CancellationToken cancellationToken) =>
        (await ClusterInfoAsync(available ? InfoType.AvailableResources : InfoType.ClusterResources, cancellationToken).ConfigureAwait(false)).ResourceTable.Table.ToDictionary(StringComparer.Ordinal);

    /// <summary>The job's runtime context (Ray's <c>ray.get_runtime_context()</c>).</summary>
    public async Task<RayRuntimeContext> GetRuntimeContextAsync(CancellationToken cancellationToken)
    {
        var context = (await ClusterInfoAsync(InfoType.RuntimeContext, cancellationToken).ConfigureAwait(false)).RuntimeContext;
        return new RayRuntimeContext(
            Convert.ToHexStringLower(context.JobId.Span),
            Convert.ToHexStringLower(context.NodeId.Span),
            context.Namespace,
            context.RuntimeEnv,
            string.IsNullOrEmpty(context.GcsAddress) ? null : context.GcsAddress);
    }

    /// <summary>The dashboard URL the cluster reports, or null when it reports none (DASHBOARD_URL arrived in Ray 2.3).</summary>
    public async Task<string?> GetDashboardUrlAsync(CancellationToken cancellationToken)
    {
        var response = await ClusterInfoAsync(InfoType.DashboardUrl, cancellationToken).ConfigureAwait(false);
        using var document = JsonDocument.Parse(response.Json);
        return GetString(document.RootElement, "dashboard_url") is { Length: > 0 } url ? url : null;
    }

    /// <summary>Named actors of the job's namespace, or of every namespace.</summary>
    public async Task<IReadOnlyList<NamedActorInfo>> ListNamedActorsAsync(bool allNamespaces, CancellationToken cancellationToken)
    {
        var response = await _connection.SendAsync(new DataRequest { ListNamedActors = new ClientListNamedActorsRequest { AllNamespaces = allNamespaces } }).WaitAsync(cancellationToken).ConfigureAwait(false);
        using var json = JsonDocument.Parse(response.ListNamedActors.ActorsJson);
        var result = new List<NamedActorInfo>();
        foreach (var item in json.RootElement.EnumerateArray())
        {
            result.Add(item.ValueKind == JsonValueKind.String
                ? new NamedActorInfo(item.GetString()!, null)
                : new NamedActorInfo(item.GetProperty("name").GetString()!, item.GetProperty("namespace").GetString()));
        }

        return result;
    }

    /// <summary>Kills an actor (Ray's <c>ray.kill</c>).</summary>
    public async Task KillActorAsync(RayId actorId, bool noRestart, CancellationToken cancellationToken)
    {
        var request = new TerminateRequest { ClientId = _connection.ClientId, Actor = new TerminateRequest.Types.ActorTerminate { Id = UnsafeByteOperations.UnsafeWrap(actorId.Bytes), NoRestart = noRestart } };
        await _connection.SendAsync(new DataRequest { Terminate = request }).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Cancels the task that makes an object (Ray's <c>ray.cancel</c>).</summary>
    public async Task CancelTaskAsync(RayId objectId, bool force, bool recursive, CancellationToken cancellationToken)
    {
        var request = new TerminateRequest { ClientId = _connection.ClientId, TaskObject = new TerminateRequest.Types.TaskObjectTerminate { Id = UnsafeByteOperations.UnsafeWrap(objectId.Bytes), Force = force, Recursive = recursive } };
        await _connection.SendAsync(new DataRequest { Terminate = request }).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    private Task<ClusterInfoResponse> ClusterInfoAsync(InfoType type, CancellationToken cancellationToken) =>
        _connection.CallUnaryAsync(o => _connection.Driver.ClusterInfoAsync(new ClusterInfoRequest { Type = type }, o).ResponseAsync, cancellationToken);

    private static string? GetString(JsonElement element, string name) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
}
