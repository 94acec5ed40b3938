using Microsoft.Extensions.Logging;

namespace RayClient.Packaging;

/// <summary>Log messages of runtime-env packaging.</summary>
internal static partial class RuntimeEnvLog
{
    // TODO: move these two ids into RayEventIds (owned by the public-API files).
    /// <summary>A file of 10 MiB or more is packed.</summary>
    public const int LargeFileEventId = 1005;

    /// <summary>The package was already on the cluster.</summary>
    public const int PackagePresentEventId = 1006;

    [LoggerMessage(EventId = RayEventIds.PackageUploaded, EventName = "PackageUploaded", Level = LogLevel.Information,
        Message = "Pushed runtime-env package {Uri} ({SizeBytes} bytes) for {Field} {LocalPath}.")]
    public static partial void PackageUploaded(ILogger logger, string uri, long sizeBytes, string field, string localPath);

    [LoggerMessage(EventId = PackagePresentEventId, EventName = "PackageAlreadyPresent", Level = LogLevel.Debug,
        Message = "Runtime-env package {Uri} already exists, skipping upload of {Field} {LocalPath}.")]
    public static partial void PackagePresent(ILogger logger, string uri, string field, string localPath);

    [LoggerMessage(EventId = LargeFileEventId, EventName = "PackageLargeFile", Level = LogLevel.Warning, Message = "{Warning}")]
    public static partial void LargeFile(ILogger logger, string warning);
}
