"""The phase list, batch sizes per resolution, alpha, and where a run resumes."""

import pytest

from deepzine.training.schedule import (FADE, STABLE, batch_size_for, build_phases, first_phase_index,
                                        resume_position)


def phases_16(**overrides):
    arguments = dict(output_size=16, iterations_per_stage=100, batch_size=16, batch_size_reduction_transition_size=256,
                     reduced_batch_size=4)
    arguments.update(overrides)
    return build_phases(**arguments)


def test_four_is_stable_only_then_fade_and_stable_per_resolution():
    phases = phases_16()
    assert [(phase.size, phase.kind) for phase in phases] == [(4, STABLE), (8, FADE), (8, STABLE), (16, FADE),
                                                              (16, STABLE)]
    assert [phase.index for phase in phases] == [0, 1, 2, 3, 4]
    assert all(phase.steps == 100 and phase.batch_size == 16 for phase in phases)
    assert phases[1].folder_name == 'samples_8_Transition' and phases[2].folder_name == 'samples_8'  # the original's names
    assert phases[3].name == '16x16 fade'


def test_batch_size_reduction_rule_of_the_original():
    assert batch_size_for(128, 16, 256, 4) == 16
    assert batch_size_for(256, 16, 256, 4) == 4
    assert batch_size_for(512, 16, 256, 4) == 4


def test_explicit_batch_sizes_win_for_their_sizes_only():
    assert batch_size_for(256, 16, 256, 4, {128: 12, 256: 8}) == 8
    assert batch_size_for(128, 16, 256, 4, {128: 12, 256: 8}) == 12
    assert batch_size_for(64, 16, 256, 4, {128: 12, 256: 8}) == 16


def test_images_per_phase_counts_images_like_the_paper():
    phases = phases_16(images_per_phase=1000, batch_sizes={16: 8})
    assert phases[0].steps == 63  # ceil(1000 / 16)
    assert phases[-1].steps == 125 and phases[-1].batch_size == 8
    assert phases[-1].images == 1000


def test_starting_size_skips_the_lower_phases():
    phases = phases_16()
    assert first_phase_index(phases, 4) == 0
    assert first_phase_index(phases, 8) == 1  # the fade-in of 8: 4x4 was trained before
    assert resume_position(phases, 8) == (1, 0)


def test_resume_continues_mid_phase_exactly():
    assert resume_position(phases_16(), 4, 8, FADE, 37) == (1, 37)


def test_resume_after_a_finished_phase_moves_to_the_next():
    phases = phases_16()
    assert resume_position(phases, 4, 8, STABLE, 100) == (3, 0)
    assert resume_position(phases, 4, 16, STABLE, 100) == (5, 0)  # all done


def test_resume_after_shortening_phases_moves_on():
    assert resume_position(phases_16(iterations_per_stage=50), 4, 8, FADE, 70) == (2, 0)


def test_saved_position_below_the_starting_size_jumps_to_it():
    assert resume_position(phases_16(), 16, 8, FADE, 10) == (3, 0)


def test_saved_position_outside_the_schedule_is_an_error():
    with pytest.raises(ValueError, match='not in this schedule'):
        resume_position(phases_16(), 4, 32, FADE, 10)
