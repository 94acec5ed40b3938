using Microsoft.Extensions.Logging;

namespace RayClient.Jobs;

/// <summary>Log messages of the Jobs client; never payloads, headers or tokens.</summary>
internal static partial class JobsLog
{
    [LoggerMessage(EventId = RayEventIds.JobsAddressWarning, EventName = "JobsAddressWarning", Level = LogLevel.Warning, Message = "{Warning}")]
    public static partial void AddressWarning(ILogger logger, string warning);

    [LoggerMessage(EventId = RayEventIds.JobsRequestRetry, EventName = "JobsRequestRetry", Level = LogLevel.Information,
        Message = "{Method} {Path} failed ({Reason}); retry {Attempt} in {DelayMs} ms.")]
    public static partial void RequestRetry(ILogger logger, string method, string path, string reason, int attempt, long delayMs);

    [LoggerMessage(EventId = RayEventIds.JobSubmitted, EventName = "JobSubmitted", Level = LogLevel.Information,
        Message = "Submitted job {SubmissionId}.")]
    public static partial void JobSubmitted(ILogger logger, string submissionId);

    [LoggerMessage(EventId = RayEventIds.JobSubmitRetryFoundJob, EventName = "JobSubmitRetryFoundJob", Level = LogLevel.Information,
        Message = "A retried submit found job {SubmissionId} already created by an earlier attempt; not starting it again.")]
    public static partial void SubmitRetryFoundJob(ILogger logger, string submissionId);

    [LoggerMessage(EventId = RayEventIds.JobsLogTailReconnect, EventName = "JobsLogTailReconnect", Level = LogLevel.Information,
        Message = "The log stream of job {JobId} ended while the job is {Status} ({Reason}); reconnecting (attempt {Attempt}).")]
    public static partial void LogTailReconnect(ILogger logger, string jobId, string status, string reason, int attempt);
}
