using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace RayClient.Session;

/// <summary>
/// Shared source (compiled into RayClient and RayClient.Server): PEM certificates as Ray's TLS
/// variables name them, for the client's certificate and the embedded server's.
/// </summary>
internal static class PemCertificates
{
    /// <summary>Loads a PEM certificate chain and its PEM private key, as gRPC's certificate_chain/private_key.</summary>
    public static X509Certificate2 LoadWithKey(string certFile, string keyFile, string certSource, string keySource)
    {
        try
        {
            using var pem = X509Certificate2.CreateFromPemFile(certFile, keyFile);
            // A PKCS#12 round trip gives the key a form every platform's TLS stack accepts (Windows refuses ephemeral PEM keys).
            return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), password: null);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException)
        {
            throw new ArgumentException($"Cannot load the certificate '{certFile}' ({certSource}) with the key '{keyFile}' ({keySource}): {ex.Message}", certSource, ex);
        }
    }

    /// <summary>Loads the PEM CA certificates a peer is checked against, as gRPC's root_certificates; an empty file is an error.</summary>
    public static X509Certificate2Collection LoadRoots(string caFile, string caSource)
    {
        var roots = new X509Certificate2Collection();
        try
        {
            roots.ImportFromPemFile(caFile);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CryptographicException)
        {
            throw new ArgumentException($"Cannot read the CA certificate '{caFile}' ({caSource}): {ex.Message}", caSource, ex);
        }

        if (roots.Count == 0)
        {
            throw new ArgumentException($"The CA file '{caFile}' ({caSource}) holds no PEM certificate.", caSource);
        }

        return roots;
    }
}
