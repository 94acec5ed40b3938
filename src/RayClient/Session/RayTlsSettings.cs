using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace RayClient.Session;

/// <summary>
/// The client side of Ray's TLS, resolved once per session from <see cref="RaySessionOptions"/> and
/// Ray's environment variables, and applied to the channel's <see cref="SocketsHttpHandler"/>.
/// </summary>
/// <remarks>
/// Ray's client (ray:python/ray/util/client/worker.py :: _connect_channel) uses TLS when
/// <c>RAY_USE_TLS</c> is 1/true, and then builds its credentials from
/// <c>RAY_TLS_CA_CERT</c> (the only trusted roots), <c>RAY_TLS_SERVER_CERT</c> and
/// <c>RAY_TLS_SERVER_KEY</c> (presented as the client certificate for mutual TLS;
/// ray:python/ray/_private/tls_utils.py :: load_certs_from_env). The options mirror those variables and win
/// over them. Ray requires all three variables; here each one is optional (no CA: the system trust store;
/// no certificate: no client certificate).
/// </remarks>
internal sealed class RayTlsSettings
{
    private RayTlsSettings(bool enabled, X509Certificate2Collection? roots, X509Certificate2? clientCertificate)
    {
        Enabled = enabled;
        Roots = roots;
        ClientCertificate = clientCertificate;
    }

    /// <summary>Plain HTTP/2 (h2c).</summary>
    public static RayTlsSettings Disabled { get; } = new(false, null, null);

    /// <summary>Whether the channel uses TLS (an https endpoint).</summary>
    public bool Enabled { get; }

    /// <summary>The only roots trusted for the server's certificate; null means the system trust store.</summary>
    public X509Certificate2Collection? Roots { get; }

    /// <summary>The certificate (with its key) presented to a server that asks for one.</summary>
    public X509Certificate2? ClientCertificate { get; }

    /// <summary>Reads the options and, when <c>RAY_USE_TLS</c> is set, Ray's variables.</summary>
    /// <exception cref="ArgumentException">A certificate or key file is missing or unreadable; the message names the setting.</exception>
    public static RayTlsSettings Resolve(RaySessionOptions options, Func<string, string?>? environment = null)
    {
        var environmentVariable = environment ?? Environment.GetEnvironmentVariable;
        var envTls = IsTrue(environmentVariable("RAY_USE_TLS"));
        string? Env(string name) => envTls && environmentVariable(name) is { Length: > 0 } value ? value : null;
        string Source(string? option, string optionName, string variable) => option is null && envTls ? variable : optionName;

        var caFile = options.TlsCaCertificateFile ?? Env("RAY_TLS_CA_CERT");
        var caSource = Source(options.TlsCaCertificateFile, nameof(RaySessionOptions.TlsCaCertificateFile), "RAY_TLS_CA_CERT");
        var certFile = options.TlsCertificateFile ?? Env("RAY_TLS_SERVER_CERT");
        var certSource = Source(options.TlsCertificateFile, nameof(RaySessionOptions.TlsCertificateFile), "RAY_TLS_SERVER_CERT");
        var keyFile = options.TlsKeyFile ?? Env("RAY_TLS_SERVER_KEY");
        var keySource = Source(options.TlsKeyFile, nameof(RaySessionOptions.TlsKeyFile), "RAY_TLS_SERVER_KEY");

        var enabled = options.UseTls || envTls || options.TlsCaCertificateFile is not null || options.TlsCertificateFile is not null;
        if (!enabled)
        {
            return Disabled;
        }

        var roots = caFile is null ? null : PemCertificates.LoadRoots(caFile, caSource);

        X509Certificate2? client = null;
        if (certFile is not null || keyFile is not null)
        {
            if (certFile is null || keyFile is null)
            {
                throw new ArgumentException(
                    $"A client certificate needs both its certificate and its key: {(certFile is null ? $"{certSource} is missing ({keySource} is set)" : $"{keySource} is missing ({certSource} is set)")}.",
                    certFile is null ? certSource : keySource);
            }

            client = PemCertificates.LoadWithKey(certFile, keyFile, certSource, keySource);
        }

        return new RayTlsSettings(true, roots, client);
    }

    /// <summary>Configures the handler's TLS: the trusted roots (with the usual host name check) and the client certificate.</summary>
    /// <returns>The same handler.</returns>
    public SocketsHttpHandler Apply(SocketsHttpHandler handler)
    {
        if (!Enabled)
        {
            return handler;
        }

        var ssl = new SslClientAuthenticationOptions { ApplicationProtocols = [SslApplicationProtocol.Http2] };
        if (Roots is not null)
        {
            // Only the given CA is trusted, as gRPC's root_certificates; revocation lists of a private CA are rarely reachable.
            var policy = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck };
            policy.CustomTrustStore.AddRange(Roots);
            ssl.CertificateChainPolicy = policy;
        }

        if (ClientCertificate is not null)
        {
            ssl.ClientCertificates = new X509CertificateCollection { ClientCertificate };
        }

        handler.SslOptions = ssl;
        return handler;
    }

    private static bool IsTrue(string? value) => value is not null && (value.Trim() == "1" || value.Trim().Equals("true", StringComparison.OrdinalIgnoreCase));
}
