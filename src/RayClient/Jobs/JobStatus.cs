using System.Text.Json.Serialization;

namespace RayClient.Jobs;

/// <summary>
/// The status of a Ray job (ray:python/ray/dashboard/modules/job/common.py :: JobStatus). On the
/// wire it is the upper-case name, e.g. <c>"RUNNING"</c>. Once terminal, a status never changes.
/// </summary>
[JsonConverter(typeof(JsonStringEnumConverter<JobStatus>))]
public enum JobStatus
{
    /// <summary>Submitted; the entrypoint has not started (waiting for resources or the runtime env).</summary>
    [JsonStringEnumMemberName("PENDING")]
    Pending,

    /// <summary>The entrypoint is running.</summary>
    [JsonStringEnumMemberName("RUNNING")]
    Running,

    /// <summary>Stopped on request (terminal).</summary>
    [JsonStringEnumMemberName("STOPPED")]
    Stopped,

    /// <summary>The entrypoint exited with code 0 (terminal).</summary>
    [JsonStringEnumMemberName("SUCCEEDED")]
    Succeeded,

    /// <summary>The entrypoint failed, or the job could not start (terminal).</summary>
    [JsonStringEnumMemberName("FAILED")]
    Failed,
}

/// <summary>Whether a job was started through the Jobs API or is any other Ray driver (Ray's <c>JobType</c>).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<JobType>))]
public enum JobType
{
    /// <summary>Submitted through the Jobs API.</summary>
    [JsonStringEnumMemberName("SUBMISSION")]
    Submission,

    /// <summary>A driver started some other way (e.g. a script calling <c>ray.init()</c>).</summary>
    [JsonStringEnumMemberName("DRIVER")]
    Driver,
}

/// <summary>Helpers for <see cref="JobStatus"/>.</summary>
public static class JobStatusExtensions
{
    /// <summary>True for <see cref="JobStatus.Stopped"/>, <see cref="JobStatus.Succeeded"/> and <see cref="JobStatus.Failed"/> (Ray's <c>is_terminal</c>).</summary>
    public static bool IsTerminal(this JobStatus status) =>
        status is JobStatus.Stopped or JobStatus.Succeeded or JobStatus.Failed;

    /// <summary>The wire name, e.g. <c>RUNNING</c>, as Ray's CLI prints it.</summary>
    public static string ToWireName(this JobStatus status) => status switch
    {
        JobStatus.Pending => "PENDING",
        JobStatus.Running => "RUNNING",
        JobStatus.Stopped => "STOPPED",
        JobStatus.Succeeded => "SUCCEEDED",
        JobStatus.Failed => "FAILED",
        _ => status.ToString().ToUpperInvariant(),
    };
}
