using Microsoft.Extensions.Logging;

namespace RayClient.Packaging;

/// <summary>Log messages of runtime-env packaging.</summary>
internal static partial class RuntimeEnvLog
{
    [LoggerMessage(EventId = RayEventIds.PackageUploaded, EventName = "PackageUploaded", Level = LogLevel.Information,
        Message = "Pushed runtime-env package {Uri} ({SizeBytes} bytes) for {Field} {LocalPath}.")]
    public static partial void PackageUploaded(ILogger logger, string uri, long sizeBytes, string field, string localPath);

    [LoggerMessage(EventId = RayEventIds.PackageAlreadyPresent, EventName = "PackageAlreadyPresent", Level = LogLevel.Debug,
        Message = "Runtime-env package {Uri} already exists, skipping upload of {Field} {LocalPath}.")]
    public static partial void PackagePresent(ILogger logger, string uri, string field, string localPath);

    [LoggerMessage(EventId = RayEventIds.PackageLargeFile, EventName = "PackageLargeFile", Level = LogLevel.Warning, Message = "{Warning}")]
    public static partial void LargeFile(ILogger logger, string warning);
}
