namespace RayClient.Packaging;

/// <summary>
/// Where runtime-env packages go: the cluster's KV store, reached before Init (spec §8.6). The
/// session implements it over <c>PinRuntimeEnvURI</c>, <c>KVExists</c> and <c>KVPut</c> with the
/// key = the URI's UTF-8 bytes and the namespace unset.
/// </summary>
internal interface IRuntimeEnvPackageStore
{
    /// <summary>Keeps the package referenced for <paramref name="expirationSeconds"/> so it is not garbage-collected before the job uses it.</summary>
    Task PinAsync(string uri, int expirationSeconds, CancellationToken cancellationToken);

    /// <summary>Whether the cluster already has a package under <paramref name="uri"/>.</summary>
    Task<bool> ExistsAsync(string uri, CancellationToken cancellationToken);

    /// <summary>Stores the package bytes under <paramref name="uri"/> (one message, overwrite allowed).</summary>
    Task PutAsync(string uri, ReadOnlyMemory<byte> zip, CancellationToken cancellationToken);
}
