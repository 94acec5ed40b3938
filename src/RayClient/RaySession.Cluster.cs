namespace RayClient;

public sealed partial class RaySession
{
    /// <summary>The cluster's nodes (Ray's <c>ray.nodes()</c>).</summary>
    public System.Threading.Tasks.Task<IReadOnlyList<RayNode>> GetNodesAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        return _cluster.GetNodesAsync(cancellationToken);
    }

    /// <summary>Total resources of the cluster (Ray's <c>ray.cluster_resources()</c>).</summary>
    public System.Threading.Tasks.Task<IReadOnlyDictionary<string, double>> GetClusterResourcesAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        return _cluster.GetResourcesAsync(available: false, cancellationToken);
    }

    /// <summary>Resources not in use right now (Ray's <c>ray.available_resources()</c>).</summary>
    public System.Threading.Tasks.Task<IReadOnlyDictionary<string, double>> GetAvailableResourcesAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        return _cluster.GetResourcesAsync(available: true, cancellationToken);
    }

    /// <summary>The job's runtime context: job id, node id, namespace, runtime env (Ray's <c>ray.get_runtime_context()</c>).</summary>
    public System.Threading.Tasks.Task<RayRuntimeContext> GetRuntimeContextAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        return _cluster.GetRuntimeContextAsync(cancellationToken);
    }

    /// <summary>The dashboard URL the cluster reports, or null when unknown (servers before Ray 2.3 cannot tell).</summary>
    public async System.Threading.Tasks.Task<string?> GetDashboardUrlAsync(CancellationToken cancellationToken = default)
    {
        if (RayVersions.ParseRayVersion(Server.RayVersion).Version < new Version(2, 3, 0))
        {
            return null; // DASHBOARD_URL arrived in Ray 2.3 (ray-versions.md row 10)
        }

        ThrowIfDisposed();
        return await _cluster.GetDashboardUrlAsync(cancellationToken).ConfigureAwait(false);
    }
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
