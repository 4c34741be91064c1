import pytest

torch = pytest.importorskip("torch")

from lanp.model.detector import Detector  # noqa: E402


@pytest.mark.parametrize("B,T,D", [(3, 32, 16), (1, 1, 8), (2, 5, 3)])
def test_output_shapes_and_range(B, T, D):
    model = Detector(D).eval()
    x = torch.randn(B, T, D)
    s = model(x)
    assert s.shape == (B, T)
    assert torch.all((s > 0) & (s < 1))
    single = model(x[0])
    assert single.shape == (T,)
    torch.testing.assert_close(single, s[0])


def test_layers_match_the_paper():
    m = Detector(20)
    assert (m.conv.in_channels, m.conv.out_channels, m.conv.kernel_size, m.conv.padding) == (20, 512, (3,), (1,))
    assert (m.fc1.in_features, m.fc1.out_features) == (512, 512)
    assert (m.fc2.in_features, m.fc2.out_features) == (512, 1)
    assert m.dropout.p == 0.7


def test_temporal_convolution_mixes_neighbours_only():
    torch.manual_seed(0)
    model = Detector(4).eval()
    x = torch.randn(1, 10, 4)
    y = x.clone()
    y[0, 5] += 1.0                     # change snippet 5: only snippets 4, 5, 6 may change
    diff = (model(x) - model(y)).abs()[0]
    assert torch.all(diff[[0, 1, 2, 3, 7, 8, 9]] == 0)
    assert torch.all(diff[[4, 5, 6]] > 0)


def test_dropout_active_only_in_training():
    torch.manual_seed(0)
    model = Detector(8)
    x = torch.randn(2, 6, 8)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


def test_wrong_feature_size_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\(B, T, 8\)"):
        Detector(8)(torch.zeros(2, 3, 9))
