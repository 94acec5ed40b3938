using RayClient.Packaging;

namespace RayClient.Jobs;

/// <summary>
/// The Jobs API as a runtime-env package store (ray:python/ray/dashboard/modules/dashboard_sdk.py
/// :: _upload_package_if_needed): <c>GET /api/packages/{protocol}/{name}</c> says whether the
/// package exists (and pins it on the cluster for Ray's 600 s, so no separate pin is sent), and
/// <c>PUT</c> uploads the zip's bytes.
/// </summary>
internal sealed class HttpPackageStore : IRuntimeEnvPackageStore
{
    private readonly JobSubmissionClient _client;

    public HttpPackageStore(JobSubmissionClient client) => _client = client;

    /// <summary>Nothing to do: the existence check pins the package (<c>pin_runtime_env_uri</c> in job_head.py).</summary>
    public Task PinAsync(string uri, int expirationSeconds, CancellationToken cancellationToken) => Task.CompletedTask;

    public Task<bool> ExistsAsync(string uri, CancellationToken cancellationToken) =>
        _client.PackageExistsAsync(PackagePath(uri), cancellationToken);

    public Task PutAsync(string uri, ReadOnlyMemory<byte> zip, CancellationToken cancellationToken) =>
        _client.UploadPackageAsync(PackagePath(uri), zip, cancellationToken);

    /// <summary><c>gcs://_ray_pkg_x.zip</c> → <c>/api/packages/gcs/_ray_pkg_x.zip</c> (Ray's <c>uri_to_http_components</c>).</summary>
    internal static string PackagePath(string uri)
    {
        var separator = uri.IndexOf("://", StringComparison.Ordinal);
        if (separator <= 0 || separator + 3 >= uri.Length)
        {
            throw new ArgumentException($"'{uri}' is not a package URI.", nameof(uri));
        }

        var protocol = uri[..separator];
        var name = uri[(separator + 3)..];
        return $"/api/packages/{Uri.EscapeDataString(protocol)}/{Uri.EscapeDataString(name)}";
    }
}
