using RayClient.Interactive.Tests.Infrastructure;

namespace RayClient.Interactive.Tests;

/// <summary>Every notebook in notebooks/, run cell by cell in an in-process kernel against the packed feed.</summary>
[Collection(PackedFeedCollection.Name)]
public sealed class NotebookTests(PackedFeed feed)
{
    public static TheoryData<string> Notebooks()
    {
        var data = new TheoryData<string>();
        foreach (var name in NotebookNames())
        {
            data.Add(name);
        }

        return data;
    }

    private static List<string> NotebookNames() =>
        Directory.GetFiles(Path.Combine(new PackedFeed().RepoRoot, "notebooks"), "*.ipynb").Select(p => Path.GetFileName(p)!).Order(StringComparer.Ordinal).ToList();

    [Fact]
    public void Notebooks_AtLeastGettingStartedAndReconnect()
    {
        var names = NotebookNames();
        Assert.Contains("getting-started.ipynb", names);
        Assert.Contains("reconnect-and-connection-state.ipynb", names);
    }

    [Theory]
    [MemberData(nameof(Notebooks))]
    public async Task Notebook_RunTopToBottom_EveryCellSucceedsWithTheOutputsItsTextPromises(string name)
    {
        var cells = NotebookFile.Read(Path.Combine(feed.RepoRoot, "notebooks", name), out var markdown);
        Assert.DoesNotContain("bin/", string.Concat(cells.Select(c => c.Code)));
        Assert.Contains(cells, c => c.Code.Contains($"#r \"nuget: RayClient.Interactive, {feed.Version}\"", StringComparison.Ordinal));

        using var kernel = new NotebookKernel();
        // The user's feed configuration (a nuget.config source in their setup): here, the temp feed.
        await kernel.RunOkAsync($"#i \"nuget: {feed.Feed}\"");
        foreach (var cell in cells)
        {
            var result = await kernel.RunOkAsync(cell.Code);
            foreach (var expected in cell.Expect)
            {
                Assert.True(markdown.Contains(expected, StringComparison.Ordinal), $"the notebook's text does not tell the reader to expect '{expected}'");
                Assert.True(result.PlainText.Contains(expected, StringComparison.Ordinal), $"expected '{expected}' in the output of\n{result.Describe()}");
            }
        }
    }
}
