using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using RayClient.Session;

namespace RayClient.Server;

/// <summary>
/// The embedded server's authentication, as Ray configures its own gRPC servers: token
/// authentication (Ray 2.52+: <c>RAY_AUTH_MODE=token</c>, <c>authorization: Bearer &lt;token&gt;</c> on
/// every call, refused with UNAUTHENTICATED "Invalid or missing authentication token";
/// ray:python/ray/_private/authentication/grpc_authentication_server_interceptor.py) and TLS
/// (<c>RAY_USE_TLS</c> with <c>RAY_TLS_SERVER_CERT</c>, <c>RAY_TLS_SERVER_KEY</c> and <c>RAY_TLS_CA_CERT</c>;
/// a CA means client certificates are required; ray:python/ray/_private/tls_utils.py :: add_port_to_grpc_server).
/// </summary>
internal sealed class ServerSecurity : IDisposable
{
    private readonly byte[]? _expectedHeader;

    private ServerSecurity(string? token, X509Certificate2? certificate, X509Certificate2Collection? clientRoots)
    {
        _expectedHeader = token is null ? null : Encoding.UTF8.GetBytes($"Bearer {token}");
        Certificate = certificate;
        ClientRoots = clientRoots;
    }

    /// <summary>The <c>authorization</c> value callers must send (<c>Bearer &lt;token&gt;</c>), as UTF-8; null when no token is required.</summary>
    public byte[]? ExpectedAuthorization => _expectedHeader;

    /// <summary>Whether callers must present the token.</summary>
    public bool RequiresToken => _expectedHeader is not null;

    /// <summary>The server's certificate (with key); null for cleartext HTTP/2.</summary>
    public X509Certificate2? Certificate { get; }

    /// <summary>The CA client certificates must chain to (mutual TLS); null when none is required.</summary>
    public X509Certificate2Collection? ClientRoots { get; }

    /// <summary>Resolves the options and Ray's environment variables, and refuses an unprotected network bind.</summary>
    /// <exception cref="InvalidOperationException">Token mode without a token, or a non-loopback address without a token and without the explicit opt-out.</exception>
    /// <exception cref="ArgumentException">A TLS file is missing or unreadable.</exception>
    public static ServerSecurity Resolve(LocalRayServerOptions options, IPAddress listenAddress)
    {
        var token = options.AuthToken is { } explicitToken
            ? (string.IsNullOrWhiteSpace(explicitToken) ? throw new ArgumentException("AuthToken must not be blank.", nameof(options)) : explicitToken.Trim())
            : options.TokenAuthentication || RayAuthToken.IsTokenModeEnabled()
                ? RayAuthToken.FromEnvironment(includeDefaultFile: true) ?? throw new InvalidOperationException(RayAuthToken.NoTokenMessage)
                : null;

        if (token is null && !IPAddress.IsLoopback(listenAddress) && !options.AllowUnauthenticatedNetworkAccess)
        {
            throw new InvalidOperationException(
                $"Refusing to listen on {listenAddress} without token authentication: anyone who can reach it could run any Python code as this user. " +
                "Require a token (RAY_AUTH_MODE=token with RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token; rayclient start --token-auth or --auth-token-file), " +
                "listen on loopback (127.0.0.1), or, on a network you trust completely, pass --allow-unauthenticated-network-access (LocalRayServerOptions.AllowUnauthenticatedNetworkAccess).");
        }

        var (certificate, roots) = ResolveTls(options);
        return new ServerSecurity(token, certificate, roots);
    }

    /// <summary>Releases the certificates (and the server's private key); the server calls it once Kestrel has stopped.</summary>
    public void Dispose()
    {
        Certificate?.Dispose();
        foreach (var root in ClientRoots ?? [])
        {
            root.Dispose();
        }
    }

    /// <summary>Configures TLS on a Kestrel endpoint when a certificate is set.</summary>
    public void ConfigureEndpoint(ListenOptions listen)
    {
        if (Certificate is null)
        {
            return;
        }

        listen.Use(next => connection => RefuseCleartextAsync(connection, next));
        listen.UseHttps(new HttpsConnectionAdapterOptions
        {
            ServerCertificate = Certificate,
            ClientCertificateMode = ClientRoots is null ? ClientCertificateMode.NoCertificate : ClientCertificateMode.RequireCertificate,
            ClientCertificateValidation = ClientRoots is null ? null : (certificate, _, _) => IsTrustedClient(certificate),
        });
    }

    /// <summary>
    /// Closes a connection whose first byte is not a TLS handshake record (0x16) at once. A cleartext
    /// HTTP/2 client's preface reads as a TLS record header announcing 8 KiB that never come, so
    /// without this check it would wait for the whole TLS handshake timeout before learning anything.
    /// </summary>
    private static async Task RefuseCleartextAsync(Microsoft.AspNetCore.Connections.ConnectionContext connection, Microsoft.AspNetCore.Connections.ConnectionDelegate next)
    {
        var input = connection.Transport.Input;
        var read = await input.ReadAsync(connection.ConnectionClosed).ConfigureAwait(false);
        var isTls = !read.Buffer.IsEmpty && read.Buffer.FirstSpan[0] == 0x16;
        input.AdvanceTo(read.Buffer.Start); // consume nothing: the TLS layer reads the same bytes
        if (!isTls)
        {
            connection.Abort(new Microsoft.AspNetCore.Connections.ConnectionAbortedException("Not a TLS client: this server requires TLS."));
            return;
        }

        await next(connection).ConfigureAwait(false);
    }

    /// <summary>Refuses a call without the right token before any service sees it (every method, as Ray's interceptor).</summary>
    public async Task AuthenticateAsync(HttpContext context, RequestDelegate next)
    {
        if (_expectedHeader is not null && !HasToken(context.Request.Headers.Authorization))
        {
            // A trailers-only gRPC response: what Ray's interceptor's context.abort sends.
            context.Response.StatusCode = StatusCodes.Status200OK;
            context.Response.ContentType = "application/grpc";
            context.Response.Headers["grpc-status"] = "16"; // UNAUTHENTICATED
            context.Response.Headers["grpc-message"] = RayAuthToken.RefusedMessage;
            return;
        }

        await next(context).ConfigureAwait(false);
    }

    private bool HasToken(Microsoft.Extensions.Primitives.StringValues headers)
    {
        if (headers.Count != 1 || headers[0] is not { } header)
        {
            return false;
        }

        var actual = Encoding.UTF8.GetBytes(header);
        return CryptographicOperations.FixedTimeEquals(actual, _expectedHeader);
    }

    private bool IsTrustedClient(X509Certificate2 certificate)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.CustomTrustStore.AddRange(ClientRoots!);
        chain.ChainPolicy.ApplicationPolicy.Add(new Oid("1.3.6.1.5.5.7.3.2")); // client authentication
        return chain.Build(certificate);
    }

    private static (X509Certificate2? Certificate, X509Certificate2Collection? Roots) ResolveTls(LocalRayServerOptions options)
    {
        string? certFile = options.TlsCertificateFile, keyFile = options.TlsKeyFile, caFile = options.TlsCaCertificateFile;
        string certSource = nameof(options.TlsCertificateFile), keySource = nameof(options.TlsKeyFile), caSource = nameof(options.TlsCaCertificateFile);
        if (certFile is null && keyFile is null && caFile is null && IsTrue(Environment.GetEnvironmentVariable("RAY_USE_TLS")))
        {
            // As Ray: with RAY_USE_TLS all three variables are required.
            certFile = Environment.GetEnvironmentVariable("RAY_TLS_SERVER_CERT");
            keyFile = Environment.GetEnvironmentVariable("RAY_TLS_SERVER_KEY");
            caFile = Environment.GetEnvironmentVariable("RAY_TLS_CA_CERT");
            if (string.IsNullOrEmpty(certFile) || string.IsNullOrEmpty(keyFile) || string.IsNullOrEmpty(caFile))
            {
                throw new InvalidOperationException(
                    "RAY_USE_TLS is set, so RAY_TLS_SERVER_CERT, RAY_TLS_SERVER_KEY and RAY_TLS_CA_CERT must also be set (as for a Ray cluster).");
            }

            (certSource, keySource, caSource) = ("RAY_TLS_SERVER_CERT", "RAY_TLS_SERVER_KEY", "RAY_TLS_CA_CERT");
        }

        if (certFile is null && keyFile is null)
        {
            return caFile is null
                ? (null, null)
                : throw new ArgumentException("A CA for client certificates needs the server's own certificate and key (TlsCertificateFile, TlsKeyFile).", caSource);
        }

        if (certFile is null || keyFile is null)
        {
            throw new ArgumentException("TLS needs both the server certificate and its key (TlsCertificateFile and TlsKeyFile; RAY_TLS_SERVER_CERT and RAY_TLS_SERVER_KEY).", certFile is null ? certSource : keySource);
        }

        var certificate = PemCertificates.LoadWithKey(certFile, keyFile, certSource, keySource);
        X509Certificate2Collection? roots = null;
        if (caFile is not null)
        {
            try
            {
                roots = PemCertificates.LoadRoots(caFile, caSource);
            }
            catch
            {
                certificate.Dispose();
                throw;
            }
        }

        return (certificate, roots);
    }

    private static bool IsTrue(string? value) => value is not null && (value.Trim() == "1" || value.Trim().Equals("true", StringComparison.OrdinalIgnoreCase));
}
