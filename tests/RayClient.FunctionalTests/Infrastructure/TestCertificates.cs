using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace RayClient.FunctionalTests.Infrastructure;

/// <summary>
/// A private CA made in the test (no network, no openssl): a CA certificate, a server certificate
/// for 127.0.0.1/localhost and a client certificate it issued, written as PEM files the way Ray's
/// TLS guide lays them out (ca.crt, server.crt/server.key, client.crt/client.key), plus a second CA
/// that issued nothing the server trusts.
/// </summary>
internal static class OidCollectionExtensions
{
    public static OidCollection AddAll(this OidCollection collection, IEnumerable<string> oids)
    {
        foreach (var oid in oids)
        {
            collection.Add(new Oid(oid));
        }

        return collection;
    }
}

public sealed class TestCertificates : IDisposable
{
    private TestCertificates(string directory) => Directory = directory;

    public string Directory { get; }

    public string CaCert => Path.Combine(Directory, "ca.crt");

    public string ServerCert => Path.Combine(Directory, "server.crt");

    public string ServerKey => Path.Combine(Directory, "server.key");

    public string ClientCert => Path.Combine(Directory, "client.crt");

    public string ClientKey => Path.Combine(Directory, "client.key");

    /// <summary>A client certificate issued by another CA (the server must refuse it).</summary>
    public string StrangerCert => Path.Combine(Directory, "stranger.crt");

    public string StrangerKey => Path.Combine(Directory, "stranger.key");

    public static TestCertificates Create()
    {
        var directory = Path.Combine(Path.GetTempPath(), "rayclient-tests", "tls-" + Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(directory);
        var certificates = new TestCertificates(directory);
        var now = DateTimeOffset.UtcNow;

        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest("CN=RayClient Test CA", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        caRequest.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(caRequest.PublicKey, false));
        using var ca = caRequest.CreateSelfSigned(now.AddMinutes(-5), now.AddDays(1));
        File.WriteAllText(certificates.CaCert, ca.ExportCertificatePem());

        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        san.AddIpAddress(IPAddress.IPv6Loopback);
        san.AddDnsName("localhost");
        // Ray's client presents RAY_TLS_SERVER_CERT as its own certificate, so the node certificate serves both ends.
        Issue(ca, "CN=ray-head", san.Build(), ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"], certificates.ServerCert, certificates.ServerKey, now);
        Issue(ca, "CN=ray-client", null, ["1.3.6.1.5.5.7.3.2"], certificates.ClientCert, certificates.ClientKey, now);

        using var strangerKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var strangerRequest = new CertificateRequest("CN=Another CA", strangerKey, HashAlgorithmName.SHA256);
        strangerRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        strangerRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign, true));
        using var strangerCa = strangerRequest.CreateSelfSigned(now.AddMinutes(-5), now.AddDays(1));
        Issue(strangerCa, "CN=stranger", null, ["1.3.6.1.5.5.7.3.2"], certificates.StrangerCert, certificates.StrangerKey, now);
        return certificates;
    }

    public void Dispose()
    {
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static void Issue(X509Certificate2 issuer, string subject, X509Extension? san, string[] usageOids, string certPath, string keyPath, DateTimeOffset now)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(new OidCollection().AddAll(usageOids), false));
        if (san is not null)
        {
            request.CertificateExtensions.Add(san);
        }

        var serial = new byte[16];
        RandomNumberGenerator.Fill(serial);
        serial[0] &= 0x7F;
        using var certificate = request.Create(issuer, now.AddMinutes(-5), now.AddHours(12), serial);
        File.WriteAllText(certPath, certificate.ExportCertificatePem());
        File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem());
    }
}
