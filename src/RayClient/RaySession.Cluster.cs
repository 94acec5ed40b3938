using System.Text.Json;
using Ray.Rpc;
using RayClient.Session;
using InfoType = Ray.Rpc.ClusterInfoType.Types.TypeEnum;

namespace RayClient;

public sealed partial class RaySession
{
    /// <summary>The cluster's nodes (Ray's <c>ray.nodes()</c>).</summary>
    public async System.Threading.Tasks.Task<IReadOnlyList<RayNode>> GetNodesAsync(CancellationToken cancellationToken = default)
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

    /// <summary>Total resources of the cluster (Ray's <c>ray.cluster_resources()</c>).</summary>
    public async System.Threading.Tasks.Task<IReadOnlyDictionary<string, double>> GetClusterResourcesAsync(CancellationToken cancellationToken = default) =>
        (await ClusterInfoAsync(InfoType.ClusterResources, cancellationToken).ConfigureAwait(false)).ResourceTable.Table.ToDictionary(StringComparer.Ordinal);

    /// <summary>Resources not in use right now (Ray's <c>ray.available_resources()</c>).</summary>
    public async System.Threading.Tasks.Task<IReadOnlyDictionary<string, double>> GetAvailableResourcesAsync(CancellationToken cancellationToken = default) =>
        (await ClusterInfoAsync(InfoType.AvailableResources, cancellationToken).ConfigureAwait(false)).ResourceTable.Table.ToDictionary(StringComparer.Ordinal);

    /// <summary>The job's runtime context: job id, node id, namespace, runtime env (Ray's <c>ray.get_runtime_context()</c>).</summary>
    public async System.Threading.Tasks.Task<RayRuntimeContext> GetRuntimeContextAsync(CancellationToken cancellationToken = default)
    {
        var context = (await ClusterInfoAsync(InfoType.RuntimeContext, cancellationToken).ConfigureAwait(false)).RuntimeContext;
        return new RayRuntimeContext(
            Convert.ToHexStringLower(context.JobId.Span),
            Convert.ToHexStringLower(context.NodeId.Span),
            context.Namespace,
            context.RuntimeEnv,
            string.IsNullOrEmpty(context.GcsAddress) ? null : context.GcsAddress);
    }

    /// <summary>The dashboard URL the cluster reports, or null when unknown (servers before Ray 2.3 cannot tell).</summary>
    public async System.Threading.Tasks.Task<string?> GetDashboardUrlAsync(CancellationToken cancellationToken = default)
    {
        if (RayVersions.ParseRayVersion(Server.RayVersion).Version < new Version(2, 3, 0))
        {
            return null; // DASHBOARD_URL arrived in Ray 2.3 (ray-versions.md row 10)
        }

        var response = await ClusterInfoAsync(InfoType.DashboardUrl, cancellationToken).ConfigureAwait(false);
        using var document = JsonDocument.Parse(response.Json);
        return GetString(document.RootElement, "dashboard_url") is { Length: > 0 } url ? url : null;
    }

    private System.Threading.Tasks.Task<ClusterInfoResponse> ClusterInfoAsync(InfoType type, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        return _connection.CallUnaryAsync(o => _connection.Driver.ClusterInfoAsync(new ClusterInfoRequest { Type = type }, o).ResponseAsync, cancellationToken);
    }

    private static string? GetString(JsonElement element, string name) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
}

/// <summary>A node of the cluster.</summary>
/// <param name="NodeId">Node id in hex.</param>
/// <param name="Alive">Whether the node is alive.</param>
/// <param name="Address">IP address of the node manager.</param>
/// <param name="Hostname">Host name of the node.</param>
/// <param name="Resources">The node's resources (CPU, GPU, memory, custom ones).</param>
/// <param name="RawJson">Everything Ray reported about the node, as JSON (the key set varies by Ray version).</param>
public sealed record RayNode(string NodeId, bool Alive, string Address, string Hostname, IReadOnlyDictionary<string, double> Resources, string RawJson);

/// <summary>The job's runtime context.</summary>
/// <param name="JobId">Job id in hex.</param>
/// <param name="NodeId">Id of the node the job's driver runs on, in hex.</param>
/// <param name="Namespace">The job's namespace.</param>
/// <param name="RuntimeEnvJson">The job's runtime env as JSON.</param>
/// <param name="GcsAddress">GCS address (Ray 2.6 and later), else null.</param>
public sealed record RayRuntimeContext(string JobId, string NodeId, string Namespace, string RuntimeEnvJson, string? GcsAddress);
