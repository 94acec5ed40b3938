using System.Text;
using RayClient.Server.Jobs;

namespace RayClient.Tests.Server;

public sealed class JobsUnitTests
{
    [Fact]
    public void Chunks_ManyLines_AtMostTenLinesPerMessage_AndNothingLost()
    {
        var text = string.Concat(Enumerable.Range(1, 25).Select(i => $"line {i}\n")) + "partial";

        var chunks = JobManager.Chunks(new StringBuilder(text));

        Assert.Equal(text, string.Concat(chunks));
        Assert.Equal([10, 10, 6], chunks.Select(c => c.Split('\n').Length - (c.EndsWith('\n') ? 1 : 0)));
        Assert.EndsWith("partial", chunks[^1]); // a line still being written is sent as it is
    }

    [Fact]
    public void Chunks_HugeLine_CutAt20000Characters()
    {
        var text = new string('x', 45_000) + "\n";

        var chunks = JobManager.Chunks(new StringBuilder(text));

        Assert.Equal(text, string.Concat(chunks));
        Assert.All(chunks, c => Assert.True(c.Length <= 20_000));
    }

    [Fact]
    public void Parse_NullValuedKeys_AreDropped_AndDeprecatedJobIdIsTheSubmissionId()
    {
        var request = JobSubmitRequest.Parse("""{"entrypoint": "echo", "submission_id": null, "job_id": "old_style", "entrypoint_label_selector": null, "entrypoint_num_cpus": 1.5}"""u8);

        Assert.Equal("old_style", request.SubmissionId);
        Assert.Equal(1.5, request.NumCpus);
    }

    [Theory]
    [InlineData("[1]", 500, "AttributeError: 'list' object has no attribute 'items'")]
    [InlineData("not json", 500, "json.decoder.JSONDecodeError")]
    [InlineData("""{"entrypoint": "x", "submission_id": 7}""", 400, "TypeError: submission_id must be a string if provided, got <class 'int'>")]
    [InlineData("""{"entrypoint": "x", "entrypoint_resources": []}""", 400, "TypeError: entrypoint_resources must be a dict, got <class 'list'>")]
    public void Parse_BadBodies_RaysStatusAndText(string body, int status, string text)
    {
        var error = Assert.Throws<JobsApiException>(() => JobSubmitRequest.Parse(Encoding.UTF8.GetBytes(body)));

        Assert.Equal(status, error.StatusCode);
        Assert.Contains(text, error.Message);
    }

    [Fact]
    public void DefaultMessages_AreRays()
    {
        var record = new JobRecord { SubmissionId = "s", Entrypoint = "e", EntrypointNumGpus = 1, RuntimeEnv = new() { ["pip"] = "x" } };

        Assert.Equal(
            "Job has not started yet. It may be waiting for resources (CPUs, GPUs, memory, custom resources) to become available. It may be waiting for the runtime environment to be set up.",
            record.DefaultMessage(JobStatus.Pending));
        record.SetStatus(JobStatus.Failed, null, 42);
        Assert.Equal("Job failed.", record.Message);
        Assert.Equal(42, record.EndTime);
    }
}
