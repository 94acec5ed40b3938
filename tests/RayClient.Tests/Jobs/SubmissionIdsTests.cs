using RayClient.Jobs;

namespace RayClient.Tests.Jobs;

public sealed class SubmissionIdsTests
{
    [Fact]
    public void Generate_HasRaysFormat()
    {
        var ids = Enumerable.Range(0, 2000).Select(_ => SubmissionIds.Generate()).ToList();

        Assert.All(ids, id => Assert.Matches("^raysubmit_[A-HJ-NP-Za-km-z1-9]{16}$", id));
        Assert.All(ids, id => Assert.True(SubmissionIds.IsGenerated(id)));
        Assert.Equal(ids.Count, ids.Distinct().Count());
        var used = ids.SelectMany(id => id[10..]).ToHashSet();
        Assert.DoesNotContain('I', used);
        Assert.DoesNotContain('l', used);
        Assert.DoesNotContain('o', used);
        Assert.DoesNotContain('O', used);
        Assert.DoesNotContain('0', used);
        Assert.True(used.Count > 50, $"only {used.Count} symbols used");
    }

    [Fact]
    public void Alphabet_IsRays57Symbols()
    {
        var expected = new string([.. "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".Where(c => "IloO0".IndexOf(c) < 0)]);

        Assert.Equal(57, SubmissionIds.Alphabet.Length);
        Assert.Equal(expected.Order(), SubmissionIds.Alphabet.Order());
    }

    [Theory]
    [InlineData("raysubmit_4LamXRuQpYdSMg7J", true)]
    [InlineData("raysubmit_4LamXRuQpYdSMg70", false)]
    [InlineData("raysubmit_short", false)]
    [InlineData("my_custom_id", false)]
    public void IsGenerated_RecognisesRaysShape(string id, bool expected) => Assert.Equal(expected, SubmissionIds.IsGenerated(id));

    [Theory]
    [InlineData("my_custom_id")]
    [InlineData("raysubmit_12345")]
    [InlineData("job-2026.01.01")]
    public void Validate_UsableIds_Pass(string id) => SubmissionIds.Validate(id);

    [Theory]
    [InlineData("")]
    [InlineData("a b")]
    [InlineData("a/b")]
    [InlineData("a\\b")]
    [InlineData("a\nb")]
    public void Validate_UnusableIds_ThrowArgumentException(string id) =>
        Assert.Throws<ArgumentException>(() => SubmissionIds.Validate(id));
}
