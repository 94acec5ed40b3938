namespace RayClient;

/// <summary>
/// A parsed <c>ray://host[:port]</c> address. Ray passes the text after <c>ray://</c> verbatim as the
/// gRPC target; RayClient adds the default client-server port 10001 when none is given
/// (spec §2.1; Ray's <c>client_builder.py :: _split_address</c>).
/// </summary>
public sealed record RayAddress
{
    /// <summary>The port a Ray head node's client server listens on by default.</summary>
    public const int DefaultPort = 10001;

    private RayAddress(string host, int port)
    {
        Host = host;
        Port = port;
    }

    /// <summary>Host name or IP literal (IPv6 without brackets).</summary>
    public string Host { get; }

    /// <summary>TCP port of the Ray client server.</summary>
    public int Port { get; }

    /// <summary>The HTTP/2 endpoint gRPC connects to.</summary>
    public Uri ToHttpUri(bool secure) =>
        new($"{(secure ? "https" : "http")}://{(Host.Contains(':', StringComparison.Ordinal) ? $"[{Host}]" : Host)}:{Port}");

    /// <inheritdoc />
    public override string ToString() =>
        $"ray://{(Host.Contains(':', StringComparison.Ordinal) ? $"[{Host}]" : Host)}:{Port}";

    /// <summary>
    /// Parses <paramref name="address"/>; when it is null or empty, the environment variable
    /// <c>RAY_ADDRESS</c> is used, as Ray does.
    /// </summary>
    /// <exception cref="ArgumentException">The address is missing or malformed; the message says what is expected.</exception>
    public static RayAddress Parse(string? address)
    {
        var text = string.IsNullOrWhiteSpace(address) ? Environment.GetEnvironmentVariable("RAY_ADDRESS") : address;
        if (string.IsNullOrWhiteSpace(text))
        {
            throw new ArgumentException(
                "No Ray address given and RAY_ADDRESS is not set. Pass \"ray://<head-node>:10001\" or start the embedded server (LocalRayServer).",
                nameof(address));
        }

        text = text.Trim();
        var schemeEnd = text.IndexOf("://", StringComparison.Ordinal);
        if (schemeEnd >= 0)
        {
            var scheme = text[..schemeEnd];
            if (scheme is "http" or "https")
            {
                throw new ArgumentException(
                    $"'{text}' is an HTTP address (a dashboard or the Jobs API). RayClient connects to the Ray client server: use \"ray://<head-node>:10001\".",
                    nameof(address));
            }

            if (!string.Equals(scheme, "ray", StringComparison.Ordinal))
            {
                throw new ArgumentException($"Unsupported address scheme '{scheme}://' in '{text}': use \"ray://<head-node>:10001\".", nameof(address));
            }

            text = text[(schemeEnd + 3)..];
        }

        if (text is "local" or "auto" or "")
        {
            throw new ArgumentException(
                $"'{address}' asks for a local Ray cluster, which a .NET process cannot start: connect to \"ray://<head-node>:10001\" or use the embedded LocalRayServer.",
                nameof(address));
        }

        // Drop a query string or trailing slash some users copy along (Ray's builder accepts query strings).
        var cut = text.IndexOfAny(['?', '/']);
        if (cut >= 0)
        {
            text = text[..cut];
        }

        string host;
        var port = DefaultPort;
        if (text.StartsWith('['))
        {
            var close = text.IndexOf(']', StringComparison.Ordinal);
            if (close < 0)
            {
                throw new ArgumentException($"Unclosed '[' in the IPv6 address '{address}'.", nameof(address));
            }

            host = text[1..close];
            var rest = text[(close + 1)..];
            if (rest.Length > 0)
            {
                port = ParsePort(rest.TrimStart(':'), address);
            }
        }
        else
        {
            var colon = text.LastIndexOf(':');
            if (colon >= 0 && text.IndexOf(':', StringComparison.Ordinal) == colon)
            {
                host = text[..colon];
                port = ParsePort(text[(colon + 1)..], address);
            }
            else
            {
                host = text; // host name, or a bare IPv6 literal without port
            }
        }

        if (host.Length == 0)
        {
            throw new ArgumentException($"The address '{address}' has no host name.", nameof(address));
        }

        return new RayAddress(host, port);
    }

    private static int ParsePort(string text, string? original)
    {
        if (!int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var port)
            || port is <= 0 or > 65535)
        {
            throw new ArgumentException($"'{text}' in '{original}' is not a TCP port (1-65535).", nameof(original));
        }

        return port;
    }
}
