using System.Globalization;

namespace RayClient.Jobs;

/// <summary>
/// Finds the Jobs API's base URL as Ray's SDK does (ray:python/ray/dashboard/utils.py ::
/// get_address_for_submission_client, ray:python/ray/dashboard/modules/dashboard_sdk.py ::
/// parse_cluster_info): <c>RAY_API_SERVER_ADDRESS</c>, then <c>RAY_ADDRESS</c>, override the
/// address given — Ray's rule, surprising as it is — and with none of them the local dashboard
/// <c>http://127.0.0.1:8265</c> is used.
/// </summary>
/// <remarks>
/// Where Ray would need a running cluster to translate an address (a <c>ray://</c> address opens a
/// Ray Client session to ask for the dashboard URL; a schemeless <c>host:port</c> or <c>auto</c> is
/// a GCS address looked up in the GCS), .NET cannot: <c>ray://</c> is refused with a message naming
/// the dashboard port, and a schemeless address is read as the dashboard's <c>http://host:port</c>
/// (a GCS address on port 6379, as <c>RAY_ADDRESS</c> holds inside a job, as the dashboard on the
/// same host at 8265), with a warning. A <c>RAY_ADDRESS</c> that is not an HTTP URL does not
/// override an address given explicitly.
/// </remarks>
internal static class JobsAddress
{
    /// <summary>Ray's default dashboard port (<c>DEFAULT_DASHBOARD_PORT</c>).</summary>
    public const int DefaultDashboardPort = 8265;

    /// <summary>Ray's default GCS port.</summary>
    public const int DefaultGcsPort = 6379;

    /// <summary>Where no address is given or set: the local dashboard.</summary>
    public const string DefaultAddress = "http://127.0.0.1:8265";

    /// <summary>The resolved base URL (no trailing slash), where it came from, and a warning to log, if any.</summary>
    internal sealed record Resolution(Uri BaseUri, string Source, string? Warning);

    /// <summary>Resolves <paramref name="address"/> against the environment.</summary>
    /// <exception cref="ArgumentException">The address is a <c>ray://</c> address or cannot be parsed; the message says what to use.</exception>
    public static Resolution Resolve(string? address, Func<string, string?> getEnvironmentVariable)
    {
        ArgumentNullException.ThrowIfNull(getEnvironmentVariable);
        var given = string.IsNullOrWhiteSpace(address) ? null : address.Trim();
        string text;
        string source;
        string? warning = null;
        var apiServer = getEnvironmentVariable("RAY_API_SERVER_ADDRESS");
        var rayAddress = getEnvironmentVariable("RAY_ADDRESS");
        if (!string.IsNullOrWhiteSpace(apiServer))
        {
            text = apiServer.Trim();
            source = "RAY_API_SERVER_ADDRESS";
        }
        else if (!string.IsNullOrWhiteSpace(rayAddress) && (given is null || IsHttp(rayAddress.Trim())))
        {
            text = rayAddress.Trim();
            source = "RAY_ADDRESS";
        }
        else if (given is not null)
        {
            text = given;
            source = "address";
            if (!string.IsNullOrWhiteSpace(rayAddress))
            {
                warning = $"RAY_ADDRESS '{rayAddress.Trim()}' is not a dashboard URL; using the address given ({given}).";
            }
        }
        else
        {
            text = DefaultAddress;
            source = "default";
        }

        if (given is not null && source != "address" && !string.Equals(given, text, StringComparison.Ordinal))
        {
            warning = $"{source} ({text}) overrides the address given ({given}), as in Ray.";
        }

        var (uri, parseWarning) = Parse(text, source);
        return new Resolution(uri, source, parseWarning ?? warning);
    }

    private static bool IsHttp(string text) =>
        text.StartsWith("http://", StringComparison.OrdinalIgnoreCase) || text.StartsWith("https://", StringComparison.OrdinalIgnoreCase);

    private static (Uri Uri, string? Warning) Parse(string text, string source)
    {
        var from = source is "address" or "default" ? string.Empty : $" (from {source})";
        var schemeEnd = text.IndexOf("://", StringComparison.Ordinal);
        if (schemeEnd >= 0)
        {
            var scheme = text[..schemeEnd].ToLowerInvariant();
            if (scheme == "ray")
            {
                var host = HostOf(text[(schemeEnd + 3)..]);
                throw new ArgumentException(
                    $"'{text}'{from} is a Ray Client address (port 10001). The Jobs API is served by the Ray dashboard: use \"http://{host}:{DefaultDashboardPort}\".",
                    "address");
            }

            if (scheme is not ("http" or "https"))
            {
                throw new ArgumentException(
                    $"Unsupported scheme '{scheme}://' in '{text}'{from}: the Jobs API needs the dashboard's \"http://<head-node>:{DefaultDashboardPort}\" (or https://).",
                    "address");
            }

            if (!Uri.TryCreate(text.TrimEnd('/'), UriKind.Absolute, out var uri) || string.IsNullOrEmpty(uri.Host))
            {
                throw new ArgumentException($"'{text}'{from} is not a valid URL.", "address");
            }

            if (!string.IsNullOrEmpty(uri.Query) || !string.IsNullOrEmpty(uri.Fragment))
            {
                throw new ArgumentException($"'{text}'{from} has a query or fragment; give the dashboard's base URL.", "address");
            }

            return (uri, null);
        }

        if (text is "auto" or "local")
        {
            return (new Uri(DefaultAddress), $"'{text}'{from} asks for the local cluster; using its dashboard at {DefaultAddress}.");
        }

        var bare = text.TrimEnd('/');
        if (!Uri.TryCreate("http://" + bare, UriKind.Absolute, out var parsed) || string.IsNullOrEmpty(parsed.Host) || parsed.AbsolutePath != "/")
        {
            throw new ArgumentException($"'{text}'{from} is not an address; use \"http://<head-node>:{DefaultDashboardPort}\".", "address");
        }

        var explicitPort = bare.EndsWith(":" + parsed.Port.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal);
        if (!explicitPort || parsed.Port == DefaultGcsPort)
        {
            var dashboard = new UriBuilder("http", parsed.Host, DefaultDashboardPort).Uri;
            return (dashboard, explicitPort
                ? $"'{text}'{from} is a GCS address; RayClient cannot ask the GCS for the dashboard, so it uses Ray's default dashboard port on that host: {Trim(dashboard)}."
                : $"'{text}'{from} has no scheme or port; using {Trim(dashboard)}.");
        }

        return (parsed, $"'{text}'{from} has no scheme; using {Trim(parsed)}. (Ray would read a schemeless address as a GCS address.)");
    }

    private static string Trim(Uri uri) => uri.ToString().TrimEnd('/');

    private static string HostOf(string rest)
    {
        var cut = rest.IndexOfAny(['/', '?']);
        if (cut >= 0)
        {
            rest = rest[..cut];
        }

        if (rest.StartsWith('['))
        {
            var close = rest.IndexOf(']', StringComparison.Ordinal);
            return close > 0 ? rest[..(close + 1)] : rest;
        }

        var colon = rest.LastIndexOf(':');
        return colon > 0 ? rest[..colon] : (rest.Length == 0 ? "<head-node>" : rest);
    }
}
