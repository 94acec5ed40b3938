namespace RayClient.Packaging;

/// <summary>
/// Which runtime-env strings are URIs (ray:python/ray/_private/runtime_env/protocol.py,
/// <c>packaging.py :: parse_uri</c>, <c>validation.py :: validate_uri</c>). A string whose scheme is
/// not one of Ray's protocols is a local path, as in Ray.
/// </summary>
internal static class RuntimeEnvUris
{
    // Remote protocols: downloaded by the cluster with smart_open. The newest docs add http,
    // azure and abfss; older clusters reject those as unknown protocols.
    private static readonly string[] s_remote = ["https", "http", "s3", "gs", "file", "azure", "abfss"];

    // Cluster-internal protocols; "local" (newest) names a directory present on every node.
    private static readonly string[] s_internal = ["gcs", "conda", "pip", "uv", "local"];

    /// <summary>Whether <paramref name="value"/> starts with <c>&lt;known protocol&gt;://</c>.</summary>
    public static bool TryGetProtocol(string value, out string protocol)
    {
        protocol = string.Empty;
        var separator = value.IndexOf("://", StringComparison.Ordinal);
        if (separator <= 0)
        {
            return false;
        }

        var scheme = value[..separator].ToLowerInvariant();
        if (Array.IndexOf(s_remote, scheme) < 0 && Array.IndexOf(s_internal, scheme) < 0)
        {
            return false;
        }

        protocol = scheme;
        return true;
    }

    /// <summary>True for a URI (not a local path).</summary>
    public static bool IsUri(string value) => TryGetProtocol(value, out _);

    /// <summary>True for protocols the cluster downloads from outside (https, s3, gs, …).</summary>
    public static bool IsRemote(string protocol) => Array.IndexOf(s_remote, protocol) >= 0;

    /// <summary>
    /// Ray's <c>validate_uri</c> for an already-known URI: remote packages must be <c>.zip</c> or
    /// <c>.whl</c> files (the URL path, without query or fragment, is checked).
    /// </summary>
    /// <exception cref="RayRuntimeEnvException">A remote URI names something else.</exception>
    public static void ValidateUri(string uri, string field)
    {
        if (!TryGetProtocol(uri, out var protocol) || !IsRemote(protocol))
        {
            return;
        }

        var path = uri;
        var cut = path.IndexOfAny(['?', '#']);
        if (cut >= 0)
        {
            path = path[..cut];
        }

        if (!path.EndsWith(".zip", StringComparison.Ordinal) && !path.EndsWith(".whl", StringComparison.Ordinal))
        {
            throw new RayRuntimeEnvException($"runtime_env['{field}']: only .zip or .whl files are supported for remote URIs, got '{uri}'.");
        }
    }
}
