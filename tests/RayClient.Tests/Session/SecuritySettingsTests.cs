using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using RayClient.Session;

namespace RayClient.Tests.Session;

/// <summary>Ray's token-file rules and the client's TLS settings, resolved from options (the environment is shared by parallel tests, so it is left alone here).</summary>
public sealed class SecuritySettingsTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "rayclient-tests", "sec-" + Guid.NewGuid().ToString("N"));

    public SecuritySettingsTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("  tok3n \t\nsecond line\n", "tok3n")]
    [InlineData("tok3n", "tok3n")]
    [InlineData("\n", null)]
    [InlineData("   \nlater\n", null)]
    public void ReadFile_FirstLineTrimmed_AsRay(string content, string? expected)
    {
        var path = Path.Combine(_dir, "auth_token");
        File.WriteAllText(path, content);

        Assert.Equal(expected, RayAuthToken.ReadFile(path));
    }

    [Fact]
    public void ReadFile_Missing_IsNull()
    {
        Assert.Null(RayAuthToken.ReadFile(Path.Combine(_dir, "absent")));
    }

    [Fact]
    public void DefaultPath_IsUnderTheHomeRayFolder()
    {
        Assert.EndsWith(Path.Combine(".ray", "auth_token"), RayAuthToken.DefaultPath());
    }

    [Fact]
    public void Resolve_CaAndClientCertificate_TrustsOnlyTheCaAndPresentsTheCertificate()
    {
        var (ca, cert, key) = WriteCertificates();

        var tls = RayTlsSettings.Resolve(new RaySessionOptions { TlsCaCertificateFile = ca, TlsCertificateFile = cert, TlsKeyFile = key });
        using var handler = tls.Apply(new SocketsHttpHandler());

        Assert.True(tls.Enabled);
        Assert.True(tls.ClientCertificate!.HasPrivateKey);
        Assert.Equal(X509ChainTrustMode.CustomRootTrust, handler.SslOptions.CertificateChainPolicy!.TrustMode);
        Assert.Single(handler.SslOptions.CertificateChainPolicy.CustomTrustStore);
        Assert.Same(tls.ClientCertificate, Assert.Single(handler.SslOptions.ClientCertificates!.Cast<X509Certificate>()));
    }

    [Fact]
    public void Resolve_UseTlsAlone_UsesTheSystemTrustStore()
    {
        var tls = RayTlsSettings.Resolve(new RaySessionOptions { UseTls = true });
        using var handler = tls.Apply(new SocketsHttpHandler());

        Assert.True(tls.Enabled);
        Assert.Null(handler.SslOptions.CertificateChainPolicy);
        Assert.Null(tls.ClientCertificate);
    }

    [Fact]
    public void Resolve_CertificateWithoutKey_NamesTheMissingSetting()
    {
        var (_, cert, _) = WriteCertificates();

        var error = Assert.Throws<ArgumentException>(() => RayTlsSettings.Resolve(new RaySessionOptions { TlsCertificateFile = cert }));

        Assert.Equal(nameof(RaySessionOptions.TlsKeyFile), error.ParamName);
    }

    [Fact]
    public void Resolve_UnreadableCa_NamesTheFileAndSetting()
    {
        var missing = Path.Combine(_dir, "nope.crt");

        var error = Assert.Throws<ArgumentException>(() => RayTlsSettings.Resolve(new RaySessionOptions { TlsCaCertificateFile = missing }));

        Assert.Contains(missing, error.Message);
        Assert.Equal(nameof(RaySessionOptions.TlsCaCertificateFile), error.ParamName);
    }

    private (string Ca, string Cert, string Key) WriteCertificates()
    {
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest("CN=Test CA", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        using var ca = caRequest.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddHours(1));
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var cert = new CertificateRequest("CN=client", key, HashAlgorithmName.SHA256).Create(ca, DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddMinutes(30), [1, 2, 3]);
        var paths = (Path.Combine(_dir, "ca.crt"), Path.Combine(_dir, "client.crt"), Path.Combine(_dir, "client.key"));
        File.WriteAllText(paths.Item1, ca.ExportCertificatePem());
        File.WriteAllText(paths.Item2, cert.ExportCertificatePem());
        File.WriteAllText(paths.Item3, key.ExportPkcs8PrivateKeyPem());
        return paths;
    }
}
